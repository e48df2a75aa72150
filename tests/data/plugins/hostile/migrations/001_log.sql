CREATE TABLE hostile_log(event_id INTEGER NOT NULL, what TEXT NOT NULL);
