"""A small prediction service that follows the registry: a rollback reaches it in seconds.

Standard library only (``http.server``); the model is any object with a
``predict(rows)`` method, e.g. a scikit-learn estimator saved with ``reg.save``::

    python examples/serve.py --registry ./registry --name churn --refresh 5
    curl -s localhost:8000/version
    curl -s -X POST localhost:8000/predict -d '{"instances": [[0.1, 2.0]]}'

``GET /version`` answers the version served and its status; ``POST /predict`` takes
``{"instances": [[...], ...]}`` and answers ``{"version": ..., "predictions": [...]}``.
Each request reads the handle's ``(model, version)`` pair once, so an answer always
names the version that computed it, and a request in flight when a rollback lands
finishes on the model it started with. ``--demo`` first saves and deploys two
scikit-learn models (a good one, then one trained on corrupted labels) into the registry
named by ``--registry`` when it holds no model of that name, for trying it out
(see docs/serving.md).
"""

from __future__ import annotations

import argparse
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelversions import ModelRegistry, Served

MAX_BODY = 1 << 20  # bytes: a larger request body is refused


class Handler(BaseHTTPRequestHandler):
    """Answers from the handle in ``self.server.served``."""

    server: Any

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # http.server's naming
        served: Served = self.server.served
        if self.path != "/version":
            self._answer(404, {"error": "try GET /version or POST /predict"})
            return
        mv = served.version
        error = served.last_error
        self._answer(
            200,
            {
                "name": mv.name,
                "version": str(mv.version),
                "status": mv.status.value,
                "sha256": mv.sha256,
                "last_error": None if error is None else str(error),
            },
        )

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._answer(404, {"error": "try GET /version or POST /predict"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._answer(400, {"error": f"send a JSON body of at most {MAX_BODY} bytes"})
            return
        try:
            rows = json.loads(self.rfile.read(length))["instances"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise ValueError("instances must be a list of rows (lists)")
        except (ValueError, KeyError, TypeError) as exc:
            self._answer(400, {"error": f'expected {{"instances": [[...], ...]}}: {exc}'})
            return
        model, mv = self.server.served.loaded  # one read: the model and its version
        try:
            predictions = model.predict(rows)
        except (ValueError, TypeError) as exc:
            self._answer(400, {"error": f"the model refused the input: {exc}", "version": None})
            return
        to_list = getattr(predictions, "tolist", None)
        self._answer(
            200,
            {
                "version": str(mv.version),
                "predictions": to_list() if to_list else list(predictions),
            },
        )

    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger("serve").debug(format, *args)


def seed_demo(reg: ModelRegistry, name: str) -> None:
    """Save and deploy a good model (1.0.0), then a bad one (1.1.0), as a training job would.

    Iris flowers (four measurements per row); the second model was trained on labels
    that a broken pipeline shuffled for half of the rows.
    """
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    broken = np.where(rng.random(len(y)) < 0.5, rng.integers(0, 3, len(y)), y)
    for labels, why in [(y, "good labels"), (broken, "shuffled labels")]:
        model = LogisticRegression(max_iter=1000).fit(x, labels)
        mv = reg.save(name, model, metrics={"accuracy": round(float(model.score(x, y)), 4)})
        reg.deploy(name, mv.version, reason=why)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", required=True, help="registry folder or URL")
    parser.add_argument("--name", default="churn", help="the model to serve")
    parser.add_argument("--env", default="production")
    parser.add_argument("--refresh", type=float, default=5.0, help="seconds between checks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port")
    parser.add_argument("--demo", action="store_true", help="seed two demo versions first")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    reg = ModelRegistry(args.registry)
    if args.demo and args.name not in reg.models():
        seed_demo(reg, args.name)
    with reg.serve(args.name, env=args.env, refresh=args.refresh) as served:
        httpd = ThreadingHTTPServer((args.host, args.port), Handler)
        httpd.served = served  # type: ignore[attr-defined]
        host, port = httpd.server_address[:2]
        print(f"serving {args.name} {served.version.version} on http://{host}:{port}", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            httpd.server_close()


if __name__ == "__main__":
    main()
