"""Tests of the token stores: the shared contract (test_store_contract.py) and each store's own."""
