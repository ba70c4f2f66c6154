"""Commands for one machine: ``mien plan|apply|status|history|rollback|customize|exec``."""
