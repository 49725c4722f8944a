"""Widgets: each renders one part of a view; none holds business logic."""
