"""localstripe, plus what stripe_sync's per-customer listings need that it lacks:

- ``GET /v1/customers/{id}/payment_methods`` (Stripe's per-customer listing of payment
  methods; localstripe only lists ``/v1/payment_methods?customer=&type=card``);
- ``limit`` and ``starting_after`` on ``GET /v1/customers/{id}/tax_ids`` (localstripe
  refuses any parameter there; Stripe pages it like every list);
- ``created[gt|gte|lt|lte]`` on ``GET /v1/balance_transactions`` (localstripe refuses them;
  Stripe filters by them, and every catch-up lists the new balance transactions so).

Everything else is localstripe's own. Run as ``python localstripe_plus.py --port N
--from-scratch``, as the ``localstripe`` command is."""

from __future__ import annotations

from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import BalanceTransaction, Customer, List, PaymentMethod

PM_PATH = "/v1/customers/{id}/payment_methods"
TAX_PATH = "/v1/customers/{id}/tax_ids"


def list_customer_payment_methods(id, type=None, limit=None, starting_after=None, **kwargs):  # noqa: A002
    # localstripe stores cards only; Stripe lists every type when none is given.
    return PaymentMethod._api_list_all(PM_PATH.replace("{id}", id), customer=id, type=type or "card",
                                       limit=limit, starting_after=starting_after)


def list_customer_tax_ids(id, limit=None, starting_after=None, **kwargs):  # noqa: A002
    page = List(TAX_PATH.replace("{id}", id), limit=limit, starting_after=starting_after)
    page._list = list(Customer._api_retrieve(id).tax_ids._list)
    return page


_list_balance_transactions = BalanceTransaction._api_list_all.__func__
_BOUNDS = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}


def list_balance_transactions(cls, url, created=None, **kwargs):
    page = _list_balance_transactions(cls, url, **kwargs)
    if created is None:
        return page
    try:
        bounds = {op: int(value) for op, value in created.items() if op in _BOUNDS}
        assert bounds and len(bounds) == len(created)
    except (AttributeError, AssertionError, TypeError, ValueError):
        raise UserError(400, "Bad request") from None
    page._list = [t for t in page._list if all(_BOUNDS[op](t.created, v) for op, v in bounds.items())]
    return page


BalanceTransaction._api_list_all = classmethod(list_balance_transactions)

# The server module builds its routes from resources.extra_apis when imported: replace
# localstripe's tax id listing first.
resources.extra_apis[:] = [(m, u, list_customer_tax_ids if (m, u) == ("GET", TAX_PATH) else f)
                           for m, u, f in resources.extra_apis]

from localstripe import server  # noqa: E402

server.app.router.add_route("GET", PM_PATH, server.api_extra(list_customer_payment_methods, PM_PATH))

if __name__ == "__main__":
    server.start()
