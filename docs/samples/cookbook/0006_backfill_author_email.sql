-- Backfill in SQL: tidy existing values and fill the gaps, so that the next
-- migration can make the column NOT NULL and UNIQUE.
UPDATE author SET email = lower(trim(email)) WHERE email IS NOT NULL;
UPDATE author SET email = 'author-' || id || '@example.invalid' WHERE email IS NULL OR email = '';
