"""eventreplay: a RabbitMQ event archive with replay."""
