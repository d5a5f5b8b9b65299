-- Randori mode of a dojo: one pilot types, the next in the order guides, and the pair
-- rotates every randori_period seconds from randori_started_at. The rotation is a function
-- of the clock and these three columns, so every node holding the session computes the same
-- pilot without telling the others at each turn. NULL period: randori is off.

ALTER TABLE dojo_sessions
    ADD COLUMN randori_period    integer CHECK (randori_period BETWEEN 1 AND 3600),
    ADD COLUMN randori_started_at timestamptz,
    ADD COLUMN randori_order     uuid[],
    ADD CONSTRAINT dojo_sessions_randori_whole CHECK (
        (randori_period IS NULL) = (randori_started_at IS NULL)
        AND (randori_period IS NULL) = (randori_order IS NULL)
    );
