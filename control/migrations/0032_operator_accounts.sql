-- Accounts the operator added through the admin API (each as the file's [[accounts]] table
-- would declare it, in JSON).
CREATE TABLE operator_accounts (
    sid TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
