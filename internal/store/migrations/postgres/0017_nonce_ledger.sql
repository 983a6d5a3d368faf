-- The nonce ledger keyed by the signed request's own timestamp first.
-- A replay repeats its timestamp and nonce (both are signed), so
-- (signed_at, app_id, nonce) refuses every replay as (app_id, nonce)
-- did, while new nonces land at the index's recent end instead of at
-- random places in it, and nonces past the signature window are purged
-- as one range of the key (no index of their own). The nonce compares
-- bytewise, and no foreign key: a nonce is claimed only for a verified
-- app, and kept ten minutes.
CREATE TABLE app_nonces_new (
    signed_at BIGINT NOT NULL,
    app_id    BIGINT NOT NULL,
    nonce     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (signed_at, app_id, nonce)
);
-- Nonces claimed before this change keep the second they were seen in:
-- still unique, purged in turn.
INSERT INTO app_nonces_new (signed_at, app_id, nonce)
SELECT CAST(floor(extract(epoch FROM seen_at)) AS BIGINT), app_id, nonce FROM app_nonces
ON CONFLICT DO NOTHING;
DROP TABLE app_nonces;
ALTER TABLE app_nonces_new RENAME TO app_nonces;
ALTER INDEX app_nonces_new_pkey RENAME TO app_nonces_pkey;
