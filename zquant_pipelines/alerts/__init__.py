"""Alerts: notifications of failed task runs and failed blocking checks, sent through Apprise."""
