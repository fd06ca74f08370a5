-- What the configuration file said of a number when it was last applied (a JSON object of its
-- fields), so that a later edit of the file applies to each field the API has not changed
-- since, and the log can say which side won a field and why.
ALTER TABLE phone_numbers ADD COLUMN configured TEXT;
