"""The example spiders."""
