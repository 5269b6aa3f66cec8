"""Tests of the token stores that need more than the shared contract (tests/test_store_contract.py)."""
