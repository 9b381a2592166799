"""Local services for eventreplay (RabbitMQ, and EventStoreDB with Docker), without needing Docker.

Run `python -m services --help`.
"""
