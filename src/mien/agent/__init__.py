"""The agent: applies personas on one machine as transactions, keeps the persistent persona
layer (history, customizations, audit), routes commands, and follows a server."""
