from profiles.keys import Keys


def _slot_tag(key: str) -> str:
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


def test_customer_keys_share_one_hash_tag():
    keys = Keys("rp")
    tags = {_slot_tag(k) for k in keys.customer_keys("c_abc")}
    assert tags == {"c:c_abc"}


def test_prefix_is_configurable_and_validated():
    assert Keys("tenant1").profile("x").startswith("tenant1:{c:x}")
    for bad in ("", "a:b", "a{b", "a b"):
        try:
            Keys(bad)
        except ValueError:
            continue
        raise AssertionError(f"prefix {bad!r} accepted")


def test_customer_pattern_escapes_glob_characters():
    assert Keys("rp").customer_pattern("a*b") == "rp:{c:a\\*b}:*"
