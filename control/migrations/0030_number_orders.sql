-- Telnyx's number orders: each as it was answered (a JSON resource), for retrieve and list.
CREATE TABLE number_orders (
    id TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX number_orders_account ON number_orders (account_sid, created_at);
