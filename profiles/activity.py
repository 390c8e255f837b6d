"""A customer's activity: purchases, events and the traits computed from them.

INTERFACE CONTRACT (being implemented now; profiles/store.py and profiles/merge.py call it):

class ActivityStore:
    def __init__(self, client, keys, clock=time.time, category_of=None): ...
        # category_of: optional callable(list[product_id]) -> dict[product_id, category]
    def record_purchase(self, customer_id: str, purchase: dict) -> tuple[dict, bool]
        # idempotent by purchase["order_id"]; returns (stored purchase, created?);
        # same order id with a different body -> raises OrderConflict (a profiles.errors.Conflict)
    def list_purchases(self, customer_id: str, *, limit: int, cursor: str | None)
        -> tuple[list[dict], str | None]       # newest first; opaque cursor
    def record_events(self, customer_id: str, events: list[dict]) -> list[str]
        # per item: "accepted" | "duplicate"
    def traits(self, customer_id: str) -> dict   # computed traits, kept current on write
    def snapshot(self, customer_id: str) -> dict # everything held (export, merge)
    def absorb(self, target_id: str, snapshot: dict) -> None
        # add another customer's snapshot into target (merge), traits recomputed atomically
    def remove(self, target_id: str, snapshot: dict) -> None
        # take out exactly what absorb(target_id, snapshot) added (unmerge)
    def iter_all_purchases(self) -> Iterator[tuple[str, dict]]
        # (customer_id, purchase) over every customer (SCAN), for training and export jobs
"""
