"""Token stores behind one contract: keyring (default), file, memory and sql."""
