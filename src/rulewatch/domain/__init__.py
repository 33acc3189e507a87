"""Pure rules of the game: conditions, stability, schedules. No Flask, Celery or SQLAlchemy."""
