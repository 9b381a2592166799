"""Shoppers and their orders, as interleaved actors.

Each actor is a generator that yields one step at a time: `(event_type, fields)`, or None for "not
yet" (an order waiting in the warehouse). A shopper's session goes login -> views -> cart or wishlist
-> maybe an order and its payment -> logout; a paid order later gets shipped and then delivered, and
only then can its buyer review what they bought. Running a dozen actors interleaved gives a stream
that reads like a shop's: many sessions at once, orders completing in the background.
"""
from __future__ import annotations

import random
import uuid
from collections import defaultdict
from typing import Any, Iterator

from faker import Faker

from eventreplay.simulator.catalog import Catalog, Product, User

Fields = dict[str, Any]
Step = tuple[str, Fields] | None

CURRENCY = "USD"
PAYMENT_METHODS = ("credit_card", "credit_card", "paypal", "debit_card", "apple_pay", "google_pay")
CARRIERS = ("UPS", "FedEx", "DHL", "USPS")
REVIEW_LINES = (
    "Exactly as described.", "Great value for the price.", "Arrived quickly, works well.",
    "Not what I expected.", "Would buy again.", "Quality could be better.", "Love it!",
)


class Shop:
    def __init__(self, catalog: Catalog, rng: random.Random, faker: Faker, *, sessions: int = 12):
        self.catalog, self.rng, self.faker = catalog, rng, faker
        self.sessions = sessions
        users = list(catalog.users)
        # Part of the cast has an account already; the others register on their first visit.
        self.registered = {user.user_id for user in users[: len(users) * 3 // 5]}
        self.idle_users = users
        self.wishlists: dict[str, list[str]] = defaultdict(list)
        self.unreviewed: dict[str, list[str]] = defaultdict(list)  # delivered, not yet reviewed
        self._by_category: dict[str, list[Product]] = defaultdict(list)
        for product in catalog.products:
            self._by_category[product.category].append(product)
        self._products = {product.product_id: product for product in catalog.products}
        self._open_sessions = 0
        self._actors: list[Iterator[Step]] = []

    def steps(self) -> Iterator[tuple[str, Fields]]:
        """The endless stream of (event_type, fields)."""
        while True:
            while self._open_sessions < self.sessions and self.idle_users:
                user = self.idle_users.pop(self.rng.randrange(len(self.idle_users)))
                self._open_sessions += 1
                self._actors.append(self._session(user))
            index = self.rng.randrange(len(self._actors))
            step = next(self._actors[index], StopIteration)
            if step is StopIteration:
                self._actors[index] = self._actors[-1]
                self._actors.pop()
            elif step is not None:
                yield step

    # a shopper's visit ---------------------------------------------------------------------------
    def _session(self, user: User) -> Iterator[Step]:
        rng = self.rng
        if user.user_id not in self.registered:
            self.registered.add(user.user_id)
            yield "UserRegistered", {
                "user_id": user.user_id, "email": user.email, "name": user.name, "country": user.country,
            }
        session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield "UserLoggedIn", {
            "user_id": user.user_id, "session_id": session_id,
            "ip_address": self.faker.ipv4_public(), "user_agent": self.faker.user_agent(),
        }
        seconds = 0
        cart: dict[str, int] = {}
        wishlist = self.wishlists[user.user_id]
        unreviewed = self.unreviewed[user.user_id]
        product = rng.choice(self.catalog.products)
        for _ in range(rng.randint(1, 8)):
            seconds += rng.randint(5, 120)
            # browse mostly within one category, as people do
            if rng.random() < 0.7:
                product = rng.choice(self._by_category[product.category])
            else:
                product = rng.choice(self.catalog.products)
            yield from self._view(user, product, cart, wishlist, unreviewed)
        if cart and rng.random() < 0.7:
            yield from self._checkout(user, cart)
        seconds += rng.randint(5, 60)
        yield "UserLoggedOut", {
            "user_id": user.user_id, "session_id": session_id, "session_duration_seconds": seconds,
        }
        self._open_sessions -= 1
        self.idle_users.append(user)

    def _view(self, user: User, product: Product, cart: dict[str, int], wishlist: list[str],
              unreviewed: list[str]) -> Iterator[Step]:
        """One product viewed, and what the shopper does then: cart, wishlist, a change of mind, a
        review of something bought earlier."""
        rng = self.rng
        yield "ProductViewed", {
            "user_id": user.user_id, "product_id": product.product_id, "product_name": product.name,
            "category": product.category, "price": product.price,
        }
        roll = rng.random()
        if roll < 0.35:
            quantity = rng.choice((1, 1, 1, 2, 3))
            cart[product.product_id] = cart.get(product.product_id, 0) + quantity
            yield "ProductAddedToCart", {
                "user_id": user.user_id, "product_id": product.product_id, "quantity": quantity,
                "price": product.price,
            }
        elif roll < 0.45 and product.product_id not in wishlist:
            wishlist.append(product.product_id)
            yield "ProductWishlistAdded", {"user_id": user.user_id, "product_id": product.product_id}
        if cart and rng.random() < 0.1:
            removed = rng.choice(sorted(cart))
            quantity = cart.pop(removed)
            yield "ProductRemovedFromCart", {
                "user_id": user.user_id, "product_id": removed, "quantity": quantity,
            }
        if wishlist and rng.random() < 0.06:
            dropped = wishlist.pop(rng.randrange(len(wishlist)))
            yield "ProductWishlistRemoved", {"user_id": user.user_id, "product_id": dropped}
        if unreviewed and rng.random() < 0.4:
            reviewed = unreviewed.pop(rng.randrange(len(unreviewed)))
            rating = rng.choices((1, 2, 3, 4, 5), weights=(1, 1, 3, 6, 8))[0]
            yield "ProductReviewed", {
                "user_id": user.user_id, "product_id": reviewed, "rating": rating,
                "review_text": rng.choice(REVIEW_LINES),
            }

    def _checkout(self, user: User, cart: dict[str, int]) -> Iterator[Step]:
        rng = self.rng
        items = [
            {"product_id": pid, "quantity": qty, "price": self._products[pid].price} for pid, qty in cart.items()
        ]
        total = round(sum(item["quantity"] * item["price"] for item in items), 2)
        order_id = f"order-{rng.getrandbits(48):012x}"
        yield "OrderPlaced", {
            "order_id": order_id, "user_id": user.user_id, "items": items, "total_amount": total,
            "currency": CURRENCY, "shipping_address": user.shipping_address,
        }
        paid = rng.random() < 0.94
        yield "PaymentProcessed", {
            "payment_id": f"pay-{rng.getrandbits(48):012x}", "order_id": order_id, "user_id": user.user_id,
            "amount": total, "currency": CURRENCY, "payment_method": rng.choice(PAYMENT_METHODS),
            "status": "completed" if paid else "failed",
        }
        if paid:  # a failed payment ends the order's life here
            self._actors.append(self._fulfilment(user, order_id, [pid for pid in cart]))

    # an order after payment ----------------------------------------------------------------------
    def _fulfilment(self, user: User, order_id: str, product_ids: list[str]) -> Iterator[Step]:
        rng = self.rng
        for _ in range(rng.randint(3, 20)):  # picking and packing
            yield None
        carrier = rng.choice(CARRIERS)
        yield "OrderShipped", {
            "order_id": order_id, "user_id": user.user_id, "carrier": carrier,
            "tracking_number": f"{carrier[:2].upper()}{rng.getrandbits(40):012d}",
        }
        for _ in range(rng.randint(5, 30)):  # on the road
            yield None
        # delivered_at is the event's own time; the factory fills it in
        yield "OrderDelivered", {"order_id": order_id, "user_id": user.user_id}
        self.unreviewed[user.user_id].extend(product_ids)
