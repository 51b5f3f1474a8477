"""Gateway tests: a package, so pytest names these modules tests.*, not gateway.tests.* (which would shadow
the `gateway` package under --import-mode=importlib)."""
