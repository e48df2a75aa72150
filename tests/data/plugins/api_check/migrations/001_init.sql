CREATE TABLE api_check_results(id INTEGER PRIMARY KEY, probe TEXT NOT NULL, ok INTEGER NOT NULL,
                               detail TEXT);
CREATE TABLE api_check_items(id INTEGER PRIMARY KEY, name TEXT, n INTEGER, flag INTEGER, doc TEXT);
CREATE TABLE api_check_ticks(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, payload TEXT);
