CREATE TABLE survey_fix_answers(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
                                score INTEGER NOT NULL, comment TEXT);
