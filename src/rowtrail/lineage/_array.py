"""``TracedArray``: a NumPy array wrapper that records row lineage as user code runs.

The wrapper holds a plain ``ndarray`` (not a subclass: subclass reductions cost more and
``np.asarray`` strips subclasses anyway) and the DAG node that produced it. NumPy's protocols
(``__array_ufunc__``, ``__array_function__``, ``__array__``) and the operators route every
operation here; each records one node whose row map says which input rows each output row
came from. Axis 0 is the row axis. ``np.asarray(X)`` returns the plain array, so code that
does not know rowtrail gets exactly what it expects.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.lineage._exports import note_export
from rowtrail.lineage._node import Node, warn_fallback
from rowtrail.lineage._rowmap import ALL, STAT

__all__ = ["TracedArray", "collectors", "elementwise", "fallback", "unwrap", "wrap"]

_new = object.__new__
# Weak sets of the traced arrays created inside active ``ws.pipeline()`` blocks.
collectors: list[weakref.WeakValueDictionary[int, TracedArray]] = []


def wrap(data: Any, node: Node) -> TracedArray:
    """Return a traced array over ``data`` produced by ``node``."""
    obj = _new(TracedArray)
    obj._a = data if type(data) is np.ndarray else np.asarray(data)
    obj._n = node
    if collectors:
        for collector in collectors:
            collector[id(obj)] = obj
    return obj


def unwrap(obj: Any) -> Any:
    """Replace traced arrays (also inside lists and tuples) by their plain arrays."""
    if type(obj) is TracedArray:
        return obj._a
    if type(obj) in (list, tuple):
        return type(obj)(unwrap(x) for x in obj)
    return obj


def traced_in(obj: Any, found: list[TracedArray]) -> list[TracedArray]:
    """Append every traced array inside ``obj`` (lists and tuples searched) to ``found``."""
    if type(obj) is TracedArray:
        found.append(obj)
    elif type(obj) in (list, tuple):
        for item in obj:
            traced_in(item, found)
    return found


def n_rows_of(data: NDArray[Any]) -> int:
    """Return the number of rows (length of axis 0; 1 for a 0-d array)."""
    return data.shape[0] if data.ndim else 1


def elementwise(name: str, result: Any, inputs: tuple[Any, ...]) -> TracedArray:
    """Wrap the result of an elementwise op.

    Same-shaped inputs map row to row; broadcast inputs (a fitted mean, a single row) become
    statistics dependencies.
    """
    if type(result) is not np.ndarray:
        result = np.asarray(result)
    ndim = result.ndim
    n_out = result.shape[0] if ndim else 1
    parents: list[Node] = []
    maps: list[Any] = []
    simple = True
    for x in inputs:
        if type(x) is TracedArray:
            a = x._a
            parents.append(x._n)
            if a.ndim == ndim and (ndim == 0 or a.shape[0] == n_out):
                maps.append(None)
            else:
                maps.append(STAT)
                simple = False
    node = Node(name, "transformation", tuple(parents), None if simple else tuple(maps), n_out)
    return wrap(result, node)


def fallback(name: str, result: Any, inputs: list[TracedArray], kind: str = "unknown") -> Any:
    """Wrap the array(s) in ``result`` as depending on all rows of every traced input."""
    if isinstance(result, tuple):
        return tuple(fallback(name, r, inputs, kind) for r in result)
    if type(result) is not np.ndarray:
        return result
    warn_fallback(name)
    parents = tuple(x._n for x in inputs)
    node = Node(name, kind, parents, (ALL,) * len(parents), n_rows_of(result), fallback=True)
    return wrap(result, node)


def binary(ufunc: np.ufunc, a: Any, b: Any) -> TracedArray:
    ta, tb = type(a) is TracedArray, type(b) is TracedArray
    if ta != tb:
        # Fast path: one traced operand keeping its shape (X + 1, X * w, 2 - X).
        traced = a if ta else b
        data = traced._a
        result = ufunc(data, b) if ta else ufunc(a, data)
        if type(result) is np.ndarray and result.shape == data.shape and result.ndim:
            node = Node(ufunc.__name__, "transformation", (traced._n,), None, result.shape[0])
            return wrap(result, node)
        return elementwise(ufunc.__name__, result, (a, b))
    if ta:  # both traced: X - X.mean(axis=0), X * Y
        result = ufunc(a._a, b._a)
        if type(result) is np.ndarray and result.ndim:
            n_out = result.shape[0]
            ma = _row_or_stat(a._a, result.ndim, n_out)
            mb = _row_or_stat(b._a, result.ndim, n_out)
            maps = None if ma is None and mb is None else (ma, mb)
            return wrap(result, Node(ufunc.__name__, "transformation", (a._n, b._n), maps, n_out))
        return elementwise(ufunc.__name__, result, (a, b))
    return elementwise(ufunc.__name__, ufunc(a, b), (a, b))


def _row_or_stat(data: NDArray[Any], ndim: int, n_out: int) -> Any:
    """Row map of an elementwise input: one-to-one, or a broadcast statistic."""
    return None if data.ndim == ndim and data.shape[0] == n_out else STAT


def _inplace(ufunc: np.ufunc, target: TracedArray, other: Any) -> TracedArray:
    od = other._a if type(other) is TracedArray else other
    ufunc(target._a, od, out=target._a)
    target._n = elementwise(ufunc.__name__ + "[inplace]", target._a, (target, other))._n
    return target


def _calibrate_elision() -> tuple[int, int]:
    """Return the reference counts a temporary operand and its data show inside an operator.

    ``(-1, -1)`` when this interpreter does not tell a temporary from a named operand (then
    temporaries are never reused); measured, not assumed, so a new CPython cannot silently
    make a named array look temporary.
    """
    seen: dict[str, tuple[int, int]] = {}

    class Probe:
        def __init__(self) -> None:
            self.a = object()

        def __mul__(self, other: str) -> Probe:
            data = self.a
            seen[other] = (sys.getrefcount(self), sys.getrefcount(data))
            return self

    named = Probe()
    _ = named * "named"
    _ = Probe() * "temporary"
    if seen["temporary"][0] < seen["named"][0]:
        return seen["temporary"]
    return -1, -1


_TEMP_REFS, _DATA_REFS = _calibrate_elision()
_ELIDE_BYTES = 256 * 1024  # NumPy's own threshold for eliding temporaries
_ELIDABLE = {"add", "subtract", "multiply", "true_divide"}


def _can_reuse(data: NDArray[Any], other: Any) -> bool:
    """Whether ``data`` (a temporary's buffer) can hold the result of ``data (op) other``."""
    if data.base is not None or not data.flags.writeable:
        return False
    if type(other) is float or type(other) is int:
        return bool(np.result_type(data, other) == data.dtype)
    if type(other) is np.ndarray and other.dtype == data.dtype:
        return (
            other.shape == data.shape or np.broadcast_shapes(other.shape, data.shape) == data.shape
        )
    return False


def _operators(name: str, ufunc: np.ufunc) -> None:
    op_name = ufunc.__name__
    elidable = op_name in _ELIDABLE and _TEMP_REFS > 0

    def apply(self: TracedArray, other: Any, reverse: bool) -> TracedArray:
        data = self._a
        traced = type(other) is TracedArray
        raw = other._a if traced else other
        # NumPy's temporary elision, for wrappers: ``np.tanh(k) * 0.5 + k`` reuses the buffer
        # of a temporary (an operand nobody else can see) instead of allocating a new one.
        reuse = (
            elidable
            and data.nbytes >= _ELIDE_BYTES
            and sys.getrefcount(self) == _TEMP_REFS + 1
            and sys.getrefcount(data) == _DATA_REFS
            and _can_reuse(data, raw)
        )
        out = data if reuse else None
        result = ufunc(raw, data, out=out) if reverse else ufunc(data, raw, out=out)
        if type(result) is np.ndarray and result.shape == data.shape and result.ndim:
            n_out = result.shape[0]
            if not traced:
                return wrap(result, Node(op_name, "transformation", (self._n,), None, n_out))
            other_map = _row_or_stat(raw, result.ndim, n_out)
            parents = (other._n, self._n) if reverse else (self._n, other._n)
            maps = (
                None if other_map is None else ((other_map, None) if reverse else (None, other_map))
            )
            return wrap(result, Node(op_name, "transformation", parents, maps, n_out))
        return elementwise(op_name, result, (other, self) if reverse else (self, other))

    def forward(self: TracedArray, other: Any) -> TracedArray:
        return apply(self, other, False)

    def reflected(self: TracedArray, other: Any) -> TracedArray:
        return apply(self, other, True)

    def inplace(self: TracedArray, other: Any) -> TracedArray:
        return _inplace(ufunc, self, other)

    setattr(TracedArray, f"__{name}__", forward)
    setattr(TracedArray, f"__r{name}__", reflected)
    setattr(TracedArray, f"__i{name}__", inplace)


class TracedArray:
    """A NumPy array that carries its row lineage; made by ``rt.track`` or ``rt.load_csv``.

    It supports NumPy's ufuncs, functions, indexing and operators; each operation returns a
    new traced array. ``np.asarray(x)`` gives the plain ``ndarray``. The NumPy protocols,
    indexing and array methods are installed by :mod:`rowtrail.lineage._functions` and
    :mod:`rowtrail.lineage._indexing`.

    Examples
    --------
    >>> import numpy as np
    >>> from rowtrail.lineage._node import Node
    >>> X = wrap(np.arange(6.0).reshape(3, 2), Node("source", "source", (), None, 3))
    >>> Y = X[X[:, 0] > 0] * 2
    >>> Y.shape, type(np.asarray(Y)).__name__
    ((2, 2), 'ndarray')
    """

    __slots__ = ("__weakref__", "_a", "_n")
    __array_priority__ = 1000.0
    __hash__ = None  # type: ignore[assignment]

    _a: NDArray[Any]
    _n: Node

    def __init__(self, data: Any, node: Node) -> None:
        self._a = np.asarray(data)
        self._n = node

    if TYPE_CHECKING:  # installed after the class body (operators below, the rest by
        # _indexing, _functions and _reorder); declared here for type checkers.

        def __getitem__(self, key: Any) -> Any: ...
        def __setitem__(self, key: Any, value: Any) -> None: ...
        def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any: ...
        def __matmul__(self, other: Any) -> TracedArray: ...
        def __rmatmul__(self, other: Any) -> TracedArray: ...
        def __add__(self, other: Any) -> TracedArray: ...
        def __radd__(self, other: Any) -> TracedArray: ...
        def __iadd__(self, other: Any) -> TracedArray: ...
        def __sub__(self, other: Any) -> TracedArray: ...
        def __rsub__(self, other: Any) -> TracedArray: ...
        def __isub__(self, other: Any) -> TracedArray: ...
        def __mul__(self, other: Any) -> TracedArray: ...
        def __rmul__(self, other: Any) -> TracedArray: ...
        def __imul__(self, other: Any) -> TracedArray: ...
        def __truediv__(self, other: Any) -> TracedArray: ...
        def __rtruediv__(self, other: Any) -> TracedArray: ...
        def __itruediv__(self, other: Any) -> TracedArray: ...
        def __floordiv__(self, other: Any) -> TracedArray: ...
        def __rfloordiv__(self, other: Any) -> TracedArray: ...
        def __ifloordiv__(self, other: Any) -> TracedArray: ...
        def __mod__(self, other: Any) -> TracedArray: ...
        def __rmod__(self, other: Any) -> TracedArray: ...
        def __imod__(self, other: Any) -> TracedArray: ...
        def __pow__(self, other: Any) -> TracedArray: ...
        def __rpow__(self, other: Any) -> TracedArray: ...
        def __ipow__(self, other: Any) -> TracedArray: ...
        def __and__(self, other: Any) -> TracedArray: ...
        def __rand__(self, other: Any) -> TracedArray: ...
        def __iand__(self, other: Any) -> TracedArray: ...
        def __or__(self, other: Any) -> TracedArray: ...
        def __ror__(self, other: Any) -> TracedArray: ...
        def __ior__(self, other: Any) -> TracedArray: ...
        def __xor__(self, other: Any) -> TracedArray: ...
        def __rxor__(self, other: Any) -> TracedArray: ...
        def __ixor__(self, other: Any) -> TracedArray: ...
        def __lshift__(self, other: Any) -> TracedArray: ...
        def __rlshift__(self, other: Any) -> TracedArray: ...
        def __ilshift__(self, other: Any) -> TracedArray: ...
        def __rshift__(self, other: Any) -> TracedArray: ...
        def __rrshift__(self, other: Any) -> TracedArray: ...
        def __irshift__(self, other: Any) -> TracedArray: ...
        def copy(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def transpose(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def mean(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def sum(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def std(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def var(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def min(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def max(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def prod(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def any(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def all(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def argmin(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def argmax(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def ptp(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def cumsum(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def cumprod(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def clip(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def round(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def argsort(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def take(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def ravel(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def flatten(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def reshape(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def astype(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def dot(self, *args: Any, **kwargs: Any) -> TracedArray: ...
        def nonzero(self) -> tuple[TracedArray, ...]: ...
        def sort(self, axis: int = -1, kind: Any = None) -> None: ...

    # ------------------------------------------------------------ NumPy protocols
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        if dtype is None and not copy:
            note_export(self)  # a tensor made from this memory can be traced back
            return self._a
        return np.array(self._a, dtype=dtype, copy=True if copy else None)

    def __dlpack__(self, **kwargs: Any) -> Any:
        # torch.as_tensor / torch.from_dlpack share the memory (instead of reading the array
        # element by element as a sequence), and the export is noted like np.asarray's.
        try:
            capsule = self._a.__dlpack__(**kwargs)
        except BufferError:
            # DLPack cannot share this memory (non-native byte order, a read-only array for
            # an old consumer): export a native copy instead, which no tensor can trace back.
            return np.array(self._a, dtype=self._a.dtype.newbyteorder("=")).__dlpack__(**kwargs)
        note_export(self)
        return capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        device: tuple[int, int] = self._a.__dlpack_device__()
        return device

    # ------------------------------------------------------------ attributes
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the array."""
        return self._a.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """Data type of the array."""
        return self._a.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self._a.ndim

    @property
    def size(self) -> int:
        """Number of elements."""
        return self._a.size

    @property
    def nbytes(self) -> int:
        """Bytes of the data."""
        return self._a.nbytes

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self._a.itemsize

    @property
    def T(self) -> TracedArray:  # noqa: N802 - NumPy's name
        """Transpose (rows become columns: every output row depends on all input rows)."""
        return self.transpose()

    def __getattr__(self, name: str) -> Any:
        # Anything not implemented here comes from the plain array; methods returning arrays
        # fall back soundly to "all input rows".
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return attr

        def method(*args: Any, **kwargs: Any) -> Any:
            inputs = traced_in(args, [self])
            result = attr(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})
            return fallback(f"ndarray.{name}", result, inputs)

        return method

    # ------------------------------------------------------------ containers
    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self._a)):
            yield self[i]

    def __contains__(self, value: Any) -> bool:
        return value in self._a

    # ------------------------------------------------------------ conversions
    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __complex__(self) -> complex:
        return complex(self._a)

    def __format__(self, spec: str) -> str:
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __repr__(self) -> str:
        text = repr(self._a).replace("\n", "\n" + " " * 12)
        return f"TracedArray({text}, op={self._n.name!r})"

    def __str__(self) -> str:
        return str(self._a)

    def __reduce__(self) -> Any:
        # Pickling (joblib, multiprocessing) sends the plain array: lineage stays in this
        # process unless persisted with rt.flush.
        return self._a.__reduce__()

    def __copy__(self) -> TracedArray:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> TracedArray:
        return self.copy()

    def tolist(self) -> Any:
        """Return the data as nested Python lists (lineage ends here)."""
        return self._a.tolist()

    def item(self, *args: Any) -> Any:
        """Return one element as a Python scalar."""
        return self._a.item(*args)

    # ------------------------------------------------------------ unary operators
    def __neg__(self) -> TracedArray:
        return elementwise("negative", -self._a, (self,))

    def __pos__(self) -> TracedArray:
        return elementwise("positive", +self._a, (self,))

    def __abs__(self) -> TracedArray:
        return elementwise("absolute", abs(self._a), (self,))

    def __invert__(self) -> TracedArray:
        return elementwise("invert", ~self._a, (self,))

    # ------------------------------------------------------------ comparisons
    def __eq__(self, other: Any) -> TracedArray:  # type: ignore[override]
        return binary(np.equal, self, other)

    def __ne__(self, other: Any) -> TracedArray:  # type: ignore[override]
        return binary(np.not_equal, self, other)

    def __lt__(self, other: Any) -> TracedArray:
        return binary(np.less, self, other)

    def __le__(self, other: Any) -> TracedArray:
        return binary(np.less_equal, self, other)

    def __gt__(self, other: Any) -> TracedArray:
        return binary(np.greater, self, other)

    def __ge__(self, other: Any) -> TracedArray:
        return binary(np.greater_equal, self, other)


for _name, _ufunc in (
    ("add", np.add),
    ("sub", np.subtract),
    ("mul", np.multiply),
    ("truediv", np.true_divide),
    ("floordiv", np.floor_divide),
    ("mod", np.remainder),
    ("pow", np.power),
    ("and", np.bitwise_and),
    ("or", np.bitwise_or),
    ("xor", np.bitwise_xor),
    ("lshift", np.left_shift),
    ("rshift", np.right_shift),
):
    _operators(_name, _ufunc)
