"""Minimal libpq over ctypes, for tests that need the extended protocol
(bind parameters) without client-side interpolation: PQexecParams sends the
statement text with $1.. and the values separately, as every driver that
binds server-side does.  No dependency beyond libpq5."""
import ctypes
import ctypes.util

_lib = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
_lib.PQconnectdb.restype = ctypes.c_void_p
_lib.PQconnectdb.argtypes = [ctypes.c_char_p]
_lib.PQstatus.argtypes = [ctypes.c_void_p]
_lib.PQerrorMessage.restype = ctypes.c_char_p
_lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
_lib.PQfinish.argtypes = [ctypes.c_void_p]
_lib.PQexec.restype = ctypes.c_void_p
_lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_lib.PQexecParams.restype = ctypes.c_void_p
_lib.PQexecParams.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
    ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_char_p),
    ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int), ctypes.c_int]
_lib.PQresultStatus.argtypes = [ctypes.c_void_p]
_lib.PQresultErrorField.restype = ctypes.c_char_p
_lib.PQresultErrorField.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.PQresultErrorMessage.restype = ctypes.c_char_p
_lib.PQresultErrorMessage.argtypes = [ctypes.c_void_p]
_lib.PQntuples.argtypes = [ctypes.c_void_p]
_lib.PQnfields.argtypes = [ctypes.c_void_p]
_lib.PQgetvalue.restype = ctypes.c_char_p
_lib.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_lib.PQgetisnull.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_lib.PQclear.argtypes = [ctypes.c_void_p]

PGRES_COMMAND_OK, PGRES_TUPLES_OK = 1, 2
CONNECTION_OK = 0
PG_DIAG_SQLSTATE = ord("C")


class Error(Exception):
    def __init__(self, sqlstate, message):
        super().__init__(f"{sqlstate}: {message}")
        self.sqlstate = sqlstate
        self.message = message


class Connection:
    def __init__(self, conninfo):
        self.conn = _lib.PQconnectdb(conninfo.encode())
        if _lib.PQstatus(self.conn) != CONNECTION_OK:
            raise RuntimeError(_lib.PQerrorMessage(self.conn).decode())

    def close(self):
        _lib.PQfinish(self.conn)

    def _result(self, res):
        try:
            if res is None:
                raise Error("08006", _lib.PQerrorMessage(self.conn).decode())
            st = _lib.PQresultStatus(res)
            if st not in (PGRES_COMMAND_OK, PGRES_TUPLES_OK):
                state = _lib.PQresultErrorField(res, PG_DIAG_SQLSTATE)
                raise Error(state.decode() if state else "?????",
                            (_lib.PQresultErrorMessage(res) or b"").decode(errors="replace").strip())
            rows = []
            for r in range(_lib.PQntuples(res)):
                rows.append(tuple(
                    None if _lib.PQgetisnull(res, r, c) else _lib.PQgetvalue(res, r, c).decode()
                    for c in range(_lib.PQnfields(res))))
            return rows
        finally:
            if res is not None:
                _lib.PQclear(res)

    def execute(self, sql):
        """Simple protocol: the text is sent (and logged) as is."""
        return self._result(_lib.PQexec(self.conn, sql.encode()))

    def query(self, sql, params=(), types=None, formats=None):
        """Extended protocol: params are bind values (str, bytes or None)."""
        n = len(params)
        values = (ctypes.c_char_p * n)()
        lengths = (ctypes.c_int * n)()
        for i, p in enumerate(params):
            b = p.encode() if isinstance(p, str) else p
            values[i] = b
            lengths[i] = len(b) if b is not None else 0
        t = (ctypes.c_uint * n)(*types) if types else None
        f = (ctypes.c_int * n)(*formats) if formats else None
        return self._result(_lib.PQexecParams(
            self.conn, sql.encode(), n, t, values, lengths, f, 0))

    def try_query(self, sql, params=(), **kw):
        """(sqlstate, rows or message): '00000' on success."""
        try:
            return "00000", self.query(sql, params, **kw)
        except Error as e:
            return e.sqlstate, e.message

    def try_execute(self, sql):
        try:
            return "00000", self.execute(sql)
        except Error as e:
            return e.sqlstate, e.message
