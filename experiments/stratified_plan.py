#!/usr/bin/python3
# Experiment behind docs/GALLERY.md ("a stratified uncertainty order"), not a product
# command: writes a stratified uncertainty order as the plan of the rolling-out version
# (id 2) of a gallery made by experiments/transition_curve.sh, so that `gallery curve
# --orders plan` measures it. k-means (k clusters, 25 Lloyd iterations, seeded) on the
# normalised old vectors; within each cluster the stored predictor's ranking; globally by
# the within-cluster fraction (p + 0.5) / n_c, ties by predicted t desc, then item id.
#   /usr/bin/python3 experiments/stratified_plan.py GALLERY/gallery.db K SEED   (Debian python3-numpy)
import datetime, json, sqlite3, sys

import numpy as np

db, k, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db)
ids = []; vecs = []
for item_id, blob in c.execute("select item_id, vec from embeddings where version_id=1 order by item_id"):
    ids.append(item_id); vecs.append(np.frombuffer(blob, dtype=np.float32))
ids = np.array(ids); O = np.stack(vecs).astype(np.float64)
p = json.loads(c.execute("select params from fits where kind='order'").fetchone()[0])
w = np.array(p["w"])
nrm = np.linalg.norm(O, axis=1); X = O / nrm[:, None]
t = X @ w[:-2] + np.log(np.maximum(nrm, 1e-12)) * w[-2] + w[-1]
rng = np.random.default_rng(seed)
C = X[rng.choice(len(X), k, replace=False)]
for it in range(25):
    a = np.argmax(X @ C.T, axis=1)
    for j in range(k):
        m = a == j
        if m.any():
            v = X[m].mean(0); C[j] = v / np.linalg.norm(v)
a = np.argmax(X @ C.T, axis=1)
frac = np.zeros(len(ids))
for j in range(k):
    idx = np.where(a == j)[0]
    o = idx[np.lexsort((ids[idx], -t[idx]))]
    frac[o] = (np.arange(len(o)) + 0.5) / len(o)
order = np.lexsort((ids, -t, frac))
labels = dict(c.execute("select id, label from items"))
print("first 1000 by label:", np.unique([labels[i] for i in ids[order[:1000]]], return_counts=True))
c.execute("delete from plan_items where version_id=2"); c.execute("delete from plans where version_id=2")
c.execute("insert into plans(version_id, order_name, seed, batch_size, planned, created) values (2,'uncertainty',0,500,?,?)",
          (len(ids), datetime.datetime.utcnow().isoformat()))
c.executemany("insert into plan_items(version_id, position, item_id) values (2,?,?)",
              [(pos, int(ids[i])) for pos, i in enumerate(order)])
c.commit()
