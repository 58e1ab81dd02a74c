-- bench/lab.py variant: the object tables keep `data` compressed in the row (STORAGE MAIN) instead
-- of out of line; it applies to rows written from then on.
ALTER TABLE stripe_sync.customers ALTER COLUMN data SET STORAGE MAIN;
ALTER TABLE stripe_sync.products ALTER COLUMN data SET STORAGE MAIN;
ALTER TABLE stripe_sync.prices ALTER COLUMN data SET STORAGE MAIN;
ALTER TABLE stripe_sync.subscriptions ALTER COLUMN data SET STORAGE MAIN;
ALTER TABLE stripe_sync.subscription_items ALTER COLUMN data SET STORAGE MAIN;
ALTER TABLE stripe_sync.invoices ALTER COLUMN data SET STORAGE MAIN;
ALTER TABLE stripe_sync.invoice_line_items ALTER COLUMN data SET STORAGE MAIN;
ALTER TABLE stripe_sync.charges ALTER COLUMN data SET STORAGE MAIN;
ALTER TABLE stripe_sync.payment_intents ALTER COLUMN data SET STORAGE MAIN;
ALTER TABLE stripe_sync.disputes ALTER COLUMN data SET STORAGE MAIN;
-- undo:
ALTER TABLE stripe_sync.customers ALTER COLUMN data SET STORAGE EXTENDED;
ALTER TABLE stripe_sync.products ALTER COLUMN data SET STORAGE EXTENDED;
ALTER TABLE stripe_sync.prices ALTER COLUMN data SET STORAGE EXTENDED;
ALTER TABLE stripe_sync.subscriptions ALTER COLUMN data SET STORAGE EXTENDED;
ALTER TABLE stripe_sync.subscription_items ALTER COLUMN data SET STORAGE EXTENDED;
ALTER TABLE stripe_sync.invoices ALTER COLUMN data SET STORAGE EXTENDED;
ALTER TABLE stripe_sync.invoice_line_items ALTER COLUMN data SET STORAGE EXTENDED;
ALTER TABLE stripe_sync.charges ALTER COLUMN data SET STORAGE EXTENDED;
ALTER TABLE stripe_sync.payment_intents ALTER COLUMN data SET STORAGE EXTENDED;
ALTER TABLE stripe_sync.disputes ALTER COLUMN data SET STORAGE EXTENDED;
