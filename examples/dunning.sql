-- Dunning inside the database: flag the application's account when Stripe
-- says a payment failed, clear the flag when an invoice is paid.
--
-- Assumes the application has a table like this one (the tests create it):
--
--   CREATE TABLE app_accounts (
--       id                    bigserial PRIMARY KEY,
--       stripe_customer_id    text UNIQUE,
--       payment_failing       boolean NOT NULL DEFAULT false,
--       payment_failing_since timestamptz
--   );
--
-- Run as a superuser (or the owner of extension stripe_sync). The handler runs
-- with search_path = pg_catalog, pg_temp (docs/security.md): it names its tables
-- with their schema.
-- as the role that registers it unless on_event() is given run_as.

CREATE OR REPLACE FUNCTION public.stripe_dunning(event jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    invoice jsonb := event #> '{data,object}';
BEGIN
    IF event->>'type' = 'invoice.payment_failed' THEN
        UPDATE public.app_accounts
           SET payment_failing = true,
               -- Keep the time of the first failure of a run of failures.
               payment_failing_since = coalesce(payment_failing_since, to_timestamp((event->>'created')::bigint))
         WHERE stripe_customer_id = invoice->>'customer';
    ELSIF event->>'type' = 'invoice.paid' THEN
        -- A paid invoice clears the flag unless the customer still has an open,
        -- failed one (stripe_sync's tables are already up to date here).
        UPDATE public.app_accounts a
           SET payment_failing = still.failing,
               payment_failing_since = CASE WHEN still.failing THEN a.payment_failing_since END
          FROM (SELECT EXISTS (SELECT 1 FROM stripe_sync.invoices i
                                WHERE i._account_id = coalesce(event->>'account', '')
                                  AND i.customer = invoice->>'customer' AND i.status = 'open'
                                  AND i.attempt_count > 0 AND NOT i._deleted) AS failing) AS still
         WHERE a.stripe_customer_id = invoice->>'customer';
    END IF;
END
$$;

SELECT stripe_sync.on_event('invoice.payment_failed', 'public.stripe_dunning(jsonb)');
SELECT stripe_sync.on_event('invoice.paid', 'public.stripe_dunning(jsonb)');

-- What needs attention now, worst first:
--   SELECT customer, email, subscription_status, past_due_since, failed_payment_attempts,
--          next_payment_attempt, last_failure_message
--     FROM stripe_sync.customer_billing_state
--    WHERE subscription_status IN ('past_due', 'unpaid') OR failed_payment_attempts > 0
--    ORDER BY past_due_since;
