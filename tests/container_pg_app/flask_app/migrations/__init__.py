"""The test app's migrations; the test adds 0004 to the replacing image."""
