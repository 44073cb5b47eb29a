-- The application's tables. Times are timestamptz; JSON is jsonb.
-- `IF NOT EXISTS`: databases made before the application had migrations of
-- its own have them from the queue's first.

CREATE TABLE IF NOT EXISTS users (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           text        NOT NULL UNIQUE,
    age             bigint      NOT NULL CHECK (age >= 0),
    name            text,
    bio             text,
    is_active       boolean     NOT NULL DEFAULT true,
    additional_data jsonb,
    created_at      timestamptz NOT NULL,
    -- Set once by the first run of the user's `user_created` job.
    onboarded_at    timestamptz
);

CREATE TABLE IF NOT EXISTS user_profiles (
    user_id             bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    recommendation_tags jsonb       NOT NULL,
    region              text,
    rank                text,
    updated_at          timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS email_outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text        NOT NULL,
    recipient  text        NOT NULL,
    subject    text        NOT NULL,
    body       text        NOT NULL,
    status     text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    created_at timestamptz NOT NULL,
    sent_at    timestamptz,
    UNIQUE (user_id, kind)
);

-- Each attempt of a `probe` job, so that tests can prove attempts never overlap.
CREATE TABLE IF NOT EXISTS probe_runs (
    job_id     bigint      NOT NULL,
    attempt    integer     NOT NULL,
    worker     text        NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    PRIMARY KEY (job_id, attempt)
);
