"""The project's exception tree; the API maps each branch to one HTTP status.

TakeoverError
├── InvalidInput          400  a value is wrong in a way a schema cannot say
│   └── Unsatisfiable     422  well formed, but no node of the pool could ever meet it
├── Unauthenticated       401  no token, or an unknown / revoked one
├── Forbidden             403  the token's role may not do this
├── NotFound              404  unknown id, or one the caller may not see
├── Conflict              409  the request fights the current state
│   └── InvalidTransition      a failover step the state machine refuses
├── NoCapacity            503  no node can take the instance (carries the reasons)
├── ProviderError         502  a marketplace refused or could not be reached
│   ├── OfferGone              the offer was taken between search and rent: try the next
│   └── ProviderUnavailable    no answer: a rent's outcome is unknown until its label is looked up
├── StoreUnavailable      503  the store could not be reached; outcome unknown
│   └── Contended              it aborted the transaction for another: nothing written, retry
└── FencedOut                  a controller's lease was superseded: it must stop acting
"""

from __future__ import annotations


class TakeoverError(Exception):
    """Base of every error takeover raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(TakeoverError):
    pass


class Unsatisfiable(InvalidInput):
    pass


class Unauthenticated(TakeoverError):
    pass


class Forbidden(TakeoverError):
    pass


class NotFound(TakeoverError):
    pass


class Conflict(TakeoverError):
    pass


class InvalidTransition(Conflict):
    pass


class NoCapacity(TakeoverError):
    pass


class ProviderError(TakeoverError):
    """A marketplace said no (the rent was refused): nothing was rented."""


class OfferGone(ProviderError):
    pass


class ProviderUnavailable(ProviderError):
    pass


class StoreUnavailable(TakeoverError):
    pass


class Contended(StoreUnavailable):
    """The store aborted a transaction to let another through (a deadlock it broke, a
    serialization failure): nothing was written, so running it again is safe."""


class FencedOut(TakeoverError):
    pass
