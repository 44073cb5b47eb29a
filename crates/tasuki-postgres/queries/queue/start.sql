-- One row per claim, with its number of jobs; rows older than the window go.
INSERT INTO queue_starts (queue, started_at, jobs) VALUES ($1, $2, $3)
