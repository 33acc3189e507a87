"""Services: use the database and the domain; views, tasks and the CLI call these."""
