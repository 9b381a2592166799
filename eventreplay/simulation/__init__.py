"""The simulated shop behind the event simulator: a stable cast of users and products (catalog.py),
shoppers whose sessions and orders follow a plausible life (shop.py)."""
