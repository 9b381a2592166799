"""A stable cast for the simulated shop: users and products made once from the seed, so that the
same ids come back across a run (and across runs with the same seed) instead of random ids."""
from __future__ import annotations

import random
from dataclasses import dataclass

from faker import Faker


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    name: str
    email: str
    country: str
    shipping_address: str


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    name: str
    category: str
    price: float


# category -> (kinds of product, price range): enough variety for plausible names and prices
PRODUCT_KINDS: dict[str, tuple[tuple[str, ...], tuple[float, float]]] = {
    "Electronics": (("Wireless Headphones", "Bluetooth Speaker", "Smartwatch", "USB-C Charger",
                     "4K Monitor", "Mechanical Keyboard", "Webcam", "E-Reader"), (15.0, 650.0)),
    "Books": (("Cookbook", "Mystery Novel", "Travel Guide", "Science Fiction Novel", "Biography",
               "Programming Handbook"), (6.0, 60.0)),
    "Home & Kitchen": (("Chef's Knife", "Espresso Maker", "Cast Iron Skillet", "Blender",
                        "Bath Towel Set", "Desk Lamp"), (12.0, 300.0)),
    "Clothing": (("Rain Jacket", "Running Shoes", "Wool Sweater", "Denim Jeans", "Baseball Cap",
                  "Hiking Socks"), (8.0, 180.0)),
    "Sports & Outdoors": (("Yoga Mat", "Camping Tent", "Water Bottle", "Bike Helmet", "Dumbbell Set",
                           "Trekking Poles"), (10.0, 400.0)),
    "Toys & Games": (("Board Game", "Puzzle 1000 pcs", "Building Blocks Set", "Plush Bear",
                      "Remote Control Car"), (9.0, 120.0)),
    "Beauty": (("Face Cream", "Shampoo", "Perfume", "Electric Toothbrush", "Sunscreen SPF50"),
               (5.0, 140.0)),
}
MODEL_WORDS = ("Classic", "Pro", "Lite", "Max", "Eco", "Plus", "Mini", "Ultra", "Original", "Travel")


@dataclass(frozen=True)
class Catalog:
    users: tuple[User, ...]
    products: tuple[Product, ...]


def build_catalog(faker: Faker, rng: random.Random, *, users: int = 200, products: int = 120) -> Catalog:
    cast = tuple(
        User(
            user_id=f"user-{n:05d}",
            name=(name := faker.name()),
            email=_email_for(name, faker, n),
            country=faker.country_code(),
            shipping_address=faker.address().replace("\n", ", "),
        )
        for n in range(1, users + 1)
    )
    categories = list(PRODUCT_KINDS)
    goods = []
    for n in range(1, products + 1):
        category = rng.choice(categories)
        kinds, (low, high) = PRODUCT_KINDS[category]
        brand = faker.last_name()
        goods.append(
            Product(
                product_id=f"prod-{n:05d}",
                name=f"{brand} {rng.choice(kinds)} {rng.choice(MODEL_WORDS)}",
                category=category,
                # prices cluster at the low end, as real catalogues do, and end in .99 or .49 often
                price=round(round(low + (high - low) * rng.random() ** 2) - rng.choice((0.01, 0.51, 0.01)), 2),
            )
        )
    return Catalog(users=cast, products=tuple(goods))


def _email_for(name: str, faker: Faker, n: int) -> str:
    local = ".".join(part.lower() for part in name.split() if part.isalpha())[:40] or "user"
    return f"{local}{n}@{faker.free_email_domain()}"
