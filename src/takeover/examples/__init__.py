"""Small workloads bundled for the demo and the tests."""
