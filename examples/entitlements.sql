-- Feature gating from the mirror. With Stripe's Entitlements (features
-- attached to products), a customer has a feature while Stripe says so: its
-- lookup key is in stripe_sync.active_entitlements (source 'entitlements').
-- Without them, a customer has a feature while one of its active or trialing
-- subscriptions has an item whose product lists the feature in its metadata
-- (features = "sso,audit_log") or whose price has the feature as its lookup key.
--
-- Product metadata is set in Stripe (Dashboard or API), e.g.
--   stripe products update prod_... -d "metadata[features]=sso,audit_log"
-- and arrives here with product.updated.

CREATE OR REPLACE FUNCTION public.has_feature(customer text, feature text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1
          FROM stripe_sync.active_entitlements e
         WHERE e.customer = has_feature.customer
           AND (e.feature_lookup_key = has_feature.feature
                OR e.price_lookup_key = has_feature.feature
                OR has_feature.feature = ANY (string_to_array(replace(e.product_metadata->>'features', ' ', ''), ',')))
    )
$$;

-- Every feature of every customer, for an application cache:
CREATE OR REPLACE VIEW public.customer_features AS
SELECT DISTINCT e.customer, f.feature
  FROM stripe_sync.active_entitlements e
 CROSS JOIN LATERAL unnest(string_to_array(replace(e.product_metadata->>'features', ' ', ''), ',')
                           || e.price_lookup_key || e.feature_lookup_key) AS f(feature)
 WHERE f.feature IS NOT NULL AND f.feature <> '';
