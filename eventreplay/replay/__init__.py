"""Replay: jobs that read archived events from the store and publish them to RabbitMQ again."""
