"""The precision suite's cases: idioms from public tutorials, each with the edges a careful reader
draws between its steps (not a test module; tests/compiler/test_dataflow.py and
bench/bench_precision.py use it).

An idiom is one text: `# step:NAME`, `# functions` and `# imports` lines start cells (IMPORTS
below is every idiom's imports cell). Its edges are "UP -> DOWN: NAMES" lines: DOWN takes NAMES
from UP, and no other edge exists. torch is not installed here: the torch-style idioms use the
small pure-Python stand-in TORCH_STAND_IN (a functions cell), written the way torch code reads
(`model.parameters()`, `optimizer.zero_grad()`, `loss.backward()`, `optimizer.step()`).
"""

from __future__ import annotations

from dataclasses import dataclass

IMPORTS = """\
import io
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier"""

# added to the imports of idioms that plot (matplotlib is optional in the dev environment)
PLOT_IMPORTS = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt"""

TORCH_STAND_IN = """\
class Param:
    def __init__(self, value):
        self.value, self.grad = value, 0.0

class Linear:
    def __init__(self):
        self.w, self.b, self.training = Param(0.0), Param(0.0), True
    def parameters(self):
        return [self.w, self.b]
    def train(self):
        self.training = True
        return self
    def eval(self):
        self.training = False
        return self
    def __call__(self, xs):
        return Output([self.w.value * x + self.b.value for x in xs], xs, self.parameters())

class Output:  # like a tensor's autograd graph, it holds the parameters, not the module
    def __init__(self, values, xs, params):
        self.values, self.xs, self.params = values, xs, params

class Loss:
    def __init__(self, out, ys):
        self.out, self.ys = out, ys
        self.value = sum((p - y) ** 2 for p, y in zip(out.values, ys)) / len(ys)
    def backward(self):
        n, (w, b) = len(self.ys), self.out.params
        errors = [2 * (p - y) / n for p, y in zip(self.out.values, self.ys)]
        w.grad += sum(e * x for e, x in zip(errors, self.out.xs))
        b.grad += sum(errors)
    def item(self):
        return self.value

class MSELoss:
    def __call__(self, out, ys):
        return Loss(out, ys)

class SGD:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr
    def zero_grad(self):
        for p in self.params:
            p.grad = 0.0
    def step(self):
        for p in self.params:
            p.value -= self.lr * p.grad"""


@dataclass(frozen=True)
class Idiom:
    name: str
    origin: str  # the kind of tutorial it comes from
    text: str
    expected: str  # "UP -> DOWN: NAMES" lines
    cautious: str = ""  # edges the compiler knowingly draws beyond the reader's (replacing theirs)

    @property
    def plots(self) -> bool:
        return "plt." in self.text

    def cells(self) -> list[tuple[str, list[str]]]:
        """(source, tags) cells: the imports cell, then the idiom's cells."""
        cells, lines, tags = [(IMPORTS + (PLOT_IMPORTS if self.plots else ""), ["imports"])], [], None
        for line in self.text.strip("\n").splitlines():
            marker = line.strip()
            if marker.startswith("# step:") or marker in ("# functions", "# imports"):
                if tags is not None:
                    cells.append(("\n".join(lines), tags))
                lines, tags = [], [marker[2:]]
                if marker == "# functions" and "TORCH" in self.origin:
                    lines.append(TORCH_STAND_IN)
            else:
                lines.append(line)
        cells.append(("\n".join(lines), tags or ["step:main"]))
        return cells

    def edges(self) -> dict[tuple[str, str], list[str]]:
        """The reader's edges."""
        return _parse(self.expected)

    def compiler_edges(self) -> dict[tuple[str, str], list[str]]:
        """The edges the compiler draws: the reader's, with the cautious ones in place of theirs."""
        drawn = _parse(self.cautious)
        replaced = {down for _, down in drawn}
        kept = {pair: names for pair, names in self.edges().items() if pair[1] not in replaced}
        return {**kept, **drawn}


def _parse(text):
    found = {}
    for line in text.strip().splitlines():
        pair, _, names = line.partition(":")
        up, _, down = pair.partition("->")
        found[(up.strip(), down.strip())] = sorted(names.split())
    return found


DATA = "# step:data\nX, y = make_classification(120, n_features=5, random_state=0)\n"
SPLIT = DATA + "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)\n"
FRAME = ("# step:load\nrng = np.random.default_rng(0)\n"
         "df = pd.DataFrame({'a': rng.normal(size=30), 'b': rng.uniform(1, 2, size=30), 'g': list('xyz') * 10})\n")

IDIOMS = [
    Idiom("issue_fan_out", "scikit-learn", DATA + """
# step:a
m1 = LogisticRegression()
m1.fit(X, y)
# step:b
m2 = RandomForestClassifier(n_estimators=5, random_state=0)
m2.fit(X, y)
""", "data -> a: X y\ndata -> b: X y"),
    Idiom("chained_fit", "scikit-learn", DATA + """
# step:a
m1 = LogisticRegression().fit(X, y)
# step:b
m2 = DecisionTreeClassifier(random_state=0).fit(X, y)
""", "data -> a: X y\ndata -> b: X y"),
    Idiom("fit_then_evaluate", "scikit-learn quickstart", SPLIT + """
# step:train
clf = LogisticRegression()
clf.fit(X_train, y_train)
# step:evaluate
acc = clf.score(X_test, y_test)
""", "data -> train: X_train y_train\ndata -> evaluate: X_test y_test\ntrain -> evaluate: clf"),
    Idiom("two_models_compared", "scikit-learn model comparison", SPLIT + """
# step:lr
lr = LogisticRegression().fit(X_train, y_train)
# step:rf
rf = RandomForestClassifier(n_estimators=5, random_state=0)
rf.fit(X_train, y_train)
# step:compare
best = max([lr, rf], key=lambda m: m.score(X_test, y_test))
""", """data -> lr: X_train y_train
data -> rf: X_train y_train
data -> compare: X_test y_test
lr -> compare: lr
rf -> compare: rf"""),
    Idiom("pipeline_of_named_steps", "scikit-learn Pipeline", DATA + """
# step:build
scaler = StandardScaler()
clf = LogisticRegression()
pipe = Pipeline([("scale", scaler), ("clf", clf)])
# step:fit
pipe.fit(X, y)
# step:inspect
coef = clf.coef_.copy()
""", "data -> fit: X y\nbuild -> fit: clf pipe scaler\nfit -> inspect: clf"),
    Idiom("make_pipeline_inline", "scikit-learn make_pipeline", SPLIT + """
# step:build
pipe = make_pipeline(StandardScaler(), LogisticRegression())
# step:fit
pipe.fit(X_train, y_train)
# step:score
score = pipe.score(X_test, y_test)
""", "data -> fit: X_train y_train\nbuild -> fit: pipe\nfit -> score: pipe\ndata -> score: X_test y_test"),
    Idiom("grid_search_clones_its_estimator", "scikit-learn GridSearchCV", DATA + """
# step:build
pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
# step:search
grid = GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=3)
grid.fit(X, y)
# step:best
best_params = grid.best_params_
# step:describe
n_steps = len(pipe.steps)
""", "build -> search: pipe\ndata -> search: X y\nsearch -> best: grid\nbuild -> describe: pipe"),
    Idiom("cross_val_score_beside_fit", "scikit-learn cross-validation", DATA + """
# step:define
model = LogisticRegression()
# step:cv
scores = cross_val_score(model, X, y, cv=3)
# step:fit
model.fit(X, y)
""", "define -> cv: model\ndata -> cv: X y\ndefine -> fit: model\ndata -> fit: X y"),
    Idiom("fit_transform_train_transform_test", "scikit-learn preprocessing", SPLIT + """
# step:scale
scaler = StandardScaler()
X_train_s = scaler.fit_transform(X_train)
# step:transform_test
X_test_s = scaler.transform(X_test)
# step:raw_stats
raw_mean = X_train.mean()
""", """data -> scale: X_train
scale -> transform_test: scaler
data -> transform_test: X_test
data -> raw_stats: X_train"""),
    Idiom("scaler_fitted_then_used_twice", "scikit-learn preprocessing", SPLIT + """
# step:fit_scaler
scaler = StandardScaler().fit(X_train)
# step:t_train
Xtr = scaler.transform(X_train)
# step:t_test
Xte = scaler.transform(X_test)
""", """data -> fit_scaler: X_train
fit_scaler -> t_train: scaler
data -> t_train: X_train
fit_scaler -> t_test: scaler
data -> t_test: X_test"""),
    Idiom("label_encoder", "scikit-learn LabelEncoder", """
# step:data
y_raw = ["cat", "dog", "cat", "bird"] * 5
# step:encode
le = LabelEncoder()
y_enc = le.fit_transform(y_raw)
# step:decode
labels = le.inverse_transform(y_enc[:3])
# step:count
n_cats = y_raw.count("cat")
""", "data -> encode: y_raw\nencode -> decode: le y_enc\ndata -> count: y_raw"),
    Idiom("pandas_pipe_pure", "pandas df.pipe", FRAME + """
# functions
def add_ratio(d):
    return d.assign(ratio=d.a / d.b)
# step:features
df2 = df.pipe(add_ratio)
# step:stats
mean_a = df.a.mean()
""", "load -> features: df\nload -> stats: df"),
    Idiom("pandas_pipe_in_place", "pandas df.pipe", FRAME + """
# functions
def add_col(d):
    d["c"] = d.a * 2
    return d
# step:features
df2 = df.pipe(add_col)
# step:stats
total_c = df2.c.sum()
""", "load -> features: df\nfeatures -> stats: df2"),
    Idiom("pandas_pipe_lambda", "pandas df.pipe", FRAME + """
# step:features
df3 = df.pipe(lambda d: d[d.a > 0])
# step:stats
n_rows = len(df)
""", "load -> features: df\nload -> stats: df"),
    Idiom("dropna_inplace", "pandas cleaning", FRAME + """
# step:clean
df.loc[0, "a"] = np.nan
df.dropna(inplace=True)
# step:stats
n_rows = len(df)
""", "load -> clean: df\nclean -> stats: df"),
    Idiom("new_column", "pandas feature engineering", FRAME + """
# step:features
df["a2"] = df["a"] ** 2
# step:model_input
X = df[["a", "a2"]].to_numpy()
""", "load -> features: df\nfeatures -> model_input: df"),
    Idiom("groupby_and_describe_in_parallel", "pandas groupby", FRAME + """
# step:summary
summary = df.groupby("g")["a"].agg("mean")
# step:describe
desc = df.describe()
""", "load -> summary: df\nload -> describe: df"),
    Idiom("apply_with_lambda", "pandas apply", FRAME + """
# step:rowwise
s = df.apply(lambda r: r.a + r.b, axis=1)
# step:colwise
m = df[["a", "b"]].max()
""", "load -> rowwise: df\nload -> colwise: df"),
    Idiom("concat_copies", "pandas concat", FRAME + """
# step:split
train, test = df.iloc[:20].copy(), df.iloc[20:].copy()
# step:full
full = pd.concat([train, test])
full["flag"] = 1
# step:use_train
n_train = len(train.columns)
""", "load -> split: df\nsplit -> full: test train\nsplit -> use_train: train"),
    Idiom("fit_on_dataframe_columns", "pandas + scikit-learn", FRAME + """
# step:target
df["y"] = (df.a > 0).astype(int)
# step:fit_lr
lr = LogisticRegression().fit(df[["a", "b"]], df["y"])
# step:fit_tree
tree = DecisionTreeClassifier(random_state=0).fit(df[["a", "b"]], df["y"])
""", "load -> target: df\ntarget -> fit_lr: df\ntarget -> fit_tree: df"),
    Idiom("figure_in_one_step", "matplotlib", FRAME + """
# step:plot
fig, ax = plt.subplots()
ax.plot(df.a)
ax.set_title("a")
# step:model
model = LogisticRegression().fit(df[["a", "b"]], df.g)
""", "load -> plot: df\nload -> model: df"),
    Idiom("figure_drawn_in_a_later_step", "matplotlib", FRAME + """
# step:setup
fig, ax = plt.subplots()
# step:draw
ax.plot(df.a)
ax.set_title("a")
# step:count
n_lines = len(fig.axes[0].lines)
""", "setup -> draw: ax fig\nload -> draw: df\ndraw -> count: fig"),
    Idiom("figure_saved_later", "matplotlib", FRAME + """
# step:plot
fig = plt.figure()
plt.hist(df.b)
# step:save
buf = io.BytesIO()
fig.savefig(buf, format="png")
n_bytes = len(buf.getvalue()) > 0
""", "load -> plot: df\nplot -> save: fig"),
    Idiom("figures_in_a_loop", "matplotlib", FRAME + """
# step:plots
for col in ["a", "b"]:
    fig, ax = plt.subplots()
    ax.hist(df[col])
    plt.close(fig)
# step:stats
means = df[["a", "b"]].mean()
""", "load -> plots: df\nload -> stats: df"),
    Idiom("torch_training_loop", "TORCH-style (stand-in)", """
# functions
# step:data
xs = [0.0, 1.0, 2.0, 3.0]
ys = [1.0, 3.0, 5.0, 7.0]
# step:model
model = Linear()
criterion = MSELoss()
optimizer = SGD(model.parameters(), lr=0.05)
# step:train
model.train()
for epoch in range(20):
    optimizer.zero_grad()
    loss = criterion(model(xs), ys)
    loss.backward()
    optimizer.step()
# step:evaluate
model.eval()
preds = model(xs).values
""", """data -> train: xs ys
model -> train: criterion model optimizer
train -> evaluate: model optimizer
data -> evaluate: xs"""),
    Idiom("torch_loop_without_train_call", "TORCH-style (stand-in)", """
# functions
# step:data
xs = [0.0, 1.0, 2.0]
ys = [2.0, 4.0, 6.0]
# step:model
model = Linear()
optimizer = SGD(model.parameters(), lr=0.05)
# step:train
for epoch in range(10):
    optimizer.zero_grad()
    Loss(model(xs), ys).backward()
    optimizer.step()
# step:weights
w = model.w.value
""", """data -> train: xs ys
model -> train: model optimizer
train -> weights: model"""),
    Idiom("torch_two_models_in_parallel", "TORCH-style (stand-in)", """
# functions
# step:data
xs = [0.0, 1.0, 2.0]
ys = [1.0, 2.0, 3.0]
# step:train_a
model_a = Linear()
opt_a = SGD(model_a.parameters(), lr=0.1)
for _ in range(5):
    opt_a.zero_grad()
    MSELoss()(model_a(xs), ys).backward()
    opt_a.step()
# step:train_b
model_b = Linear()
opt_b = SGD(model_b.parameters(), lr=0.01)
for _ in range(5):
    opt_b.zero_grad()
    MSELoss()(model_b(xs), ys).backward()
    opt_b.step()
""", "data -> train_a: xs ys\ndata -> train_b: xs ys"),
    Idiom("list_of_models_in_a_loop", "scikit-learn model comparison", DATA + """
# step:build
models = [LogisticRegression(), DecisionTreeClassifier(random_state=0)]
# step:fit
for m in models:
    m.fit(X, y)
# step:score
scores = [m.score(X, y) for m in models]
""", "build -> fit: models\ndata -> fit: X y\nfit -> score: models\ndata -> score: X y"),
    Idiom("dict_of_models", "scikit-learn model comparison", SPLIT + """
# step:build
models = {"lr": LogisticRegression(), "tree": DecisionTreeClassifier(random_state=0)}
# step:fit
for name, model in models.items():
    model.fit(X_train, y_train)
# step:score
results = {name: model.score(X_test, y_test) for name, model in models.items()}
""", """build -> fit: models
data -> fit: X_train y_train
fit -> score: models
data -> score: X_test y_test"""),
    Idiom("models_appended_in_a_loop", "scikit-learn", DATA + """
# step:fit
fitted = []
for depth in [1, 2, 3]:
    fitted.append(DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y))
# step:pick
best = max(fitted, key=lambda m: m.score(X, y))
# step:baseline
base = LogisticRegression().fit(X, y)
""", "data -> fit: X y\nfit -> pick: fitted\ndata -> pick: X y\ndata -> baseline: X y"),
    Idiom("dict_of_frames", "pandas", FRAME + """
# step:split
train, test = df.iloc[:20].copy(), df.iloc[20:].copy()
# step:prep
frames = {"train": train, "test": test}
for name, d in frames.items():
    d["a2"] = d["a"] * 2
# step:use
total = train["a2"].sum() + test["a2"].sum()
""", "load -> split: df\nsplit -> prep: test train\nprep -> use: test train"),
    Idiom("loop_over_a_list_of_frames", "docs/tags.md", FRAME + """
# step:split
train, test = df.iloc[:20].copy(), df.iloc[20:].copy()
# step:clean
for d in [train, test]:
    d["b2"] = d["b"] * 2
# step:use
n = train["b2"].sum()
""", "load -> split: df\nsplit -> clean: test train\nclean -> use: train"),
    Idiom("alias_then_mutate", "docs/tags.md", FRAME + """
# step:alias
view = df
# step:mutate
view["k"] = 1
# step:use
k_sum = df["k"].sum()
""", "load -> alias: df\nalias -> mutate: df view\nmutate -> use: df"),
    Idiom("container_change_is_not_element_change", "reference vs be", DATA + """
# step:collect
bag = [X]
# step:grow
bag.append(0)
# step:use_x
s = X.sum()
""", "data -> collect: X\ncollect -> grow: bag\ndata -> use_x: X"),
    Idiom("mutation_through_held_reference", "reference vs be", """
# functions
class Keeper:
    def fit(self, data):
        self.data_ = data
        return self
# step:data
X = [1.0, 2.0, 3.0]
# step:keep
k = Keeper()
k.fit(X)
# step:poke
k.data_[0] = 99.0
# step:use
first = X[0]
""", "data -> keep: X\nkeep -> poke: X k\npoke -> use: X"),
    Idiom("knn_holds_its_training_data", "reference vs be", DATA + """
# step:knn
knn = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(X, y)
# step:perturb
X[:, 0] = 100.0
# step:predict
pred = knn.predict(np.zeros((2, 5)))
""", "data -> knn: X y\nknn -> perturb: X knn\nperturb -> predict: knn"),
    Idiom("augmented_list", "python", """
# step:start
history = []
# step:record
history += [1.0, 0.5]
# step:report
n = len(history)
""", "start -> record: history\nrecord -> report: history"),
    Idiom("rng_shuffle_in_place", "numpy", """
# step:start
idx = np.arange(10)
rng = np.random.default_rng(0)
# step:shuffle
rng.shuffle(idx)
# step:first
first = idx[0]
""", "start -> shuffle: idx rng\nshuffle -> first: idx"),
    Idiom("function_reading_globals", "notebook functions", SPLIT + """
# functions
def evaluate(m):
    return m.score(X_test, y_test)
# step:fit
model = LogisticRegression().fit(X_train, y_train)
# step:eval
s = evaluate(model)
""", "data -> fit: X_train y_train\nfit -> eval: model\ndata -> eval: X_test y_test"),
    Idiom("helper_trains_new_models", "notebook functions", DATA + """
# functions
def train(model, X, y):
    model.fit(X, y)
    return model
# step:a
lr = train(LogisticRegression(), X, y)
# step:b
dt = train(DecisionTreeClassifier(random_state=0), X, y)
""", "data -> a: X y\ndata -> b: X y"),
    Idiom("helper_trains_a_named_model", "notebook functions", DATA + """
# functions
def train(model, X, y):
    model.fit(X, y)
    return model
# step:build
lr = LogisticRegression()
# step:fit
train(lr, X, y)
# step:use
p = lr.predict(X[:3])
""", "build -> fit: lr\ndata -> fit: X y\nfit -> use: lr\ndata -> use: X"),
    Idiom("set_params_then_fit", "scikit-learn", DATA + """
# step:define
m = LogisticRegression()
# step:tune
m.set_params(C=0.5)
# step:fit
m.fit(X, y)
""", "define -> tune: m\ntune -> fit: m\ndata -> fit: X y"),
    Idiom("copy_before_mutation", "numpy", DATA + """
# step:raw_stats
raw = X.sum()
# step:features
X = X.copy()
X[:, 0] = 0.0
# step:model
model = LogisticRegression().fit(X, y)
""", "data -> raw_stats: X\ndata -> features: X\nfeatures -> model: X\ndata -> model: y"),
    Idiom("partial_fit_stream", "scikit-learn out-of-core", DATA + """
# step:define
sgd = SGDClassifier(random_state=0)
# step:stream
for i in range(3):
    sgd.partial_fit(X[i * 40:(i + 1) * 40], y[i * 40:(i + 1) * 40], classes=[0, 1])
# step:score
acc = sgd.score(X, y)
""", "define -> stream: sgd\ndata -> stream: X y\nstream -> score: sgd\ndata -> score: X y"),
    Idiom("clone_and_refit", "scikit-learn clone", DATA + """
# step:define
base = LogisticRegression(C=0.3)
# step:fit_a
a = clone(base).fit(X, y)
# step:fit_b
b = clone(base).set_params(C=3.0).fit(X, y)
""", "define -> fit_a: base\ndata -> fit_a: X y\ndefine -> fit_b: base\ndata -> fit_b: X y"),
    # two idioms where the analysis is knowingly cautious: it cannot know that a search's best
    # estimator holds no training data, or that LogisticRegression keeps no reference to X
    Idiom("refit_best_estimator", "scikit-learn GridSearchCV", SPLIT + """
# step:search
grid = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3).fit(X_train, y_train)
# step:refit
best = grid.best_estimator_
best.fit(X, y)
# step:holdout
acc = LogisticRegression().fit(X_train, y_train).score(X_test, y_test)
""", "data -> search: X_train y_train\nsearch -> refit: grid\ndata -> refit: X y\n"
          "data -> holdout: X_test X_train y_test y_train",
          # best may be X_train as far as the analysis knows: refitting it may change X_train
          "data -> refit: X y\nsearch -> refit: X_train grid y_train\n"
          "data -> holdout: X_test y_test\nrefit -> holdout: X_train y_train"),
    Idiom("change_data_after_a_fit", "scikit-learn", DATA + """
# step:fit
lr = LogisticRegression().fit(X, y)
# step:rescale
X *= 2.0
# step:predict
pred = lr.predict(X[:3])
""", "data -> fit: X y\ndata -> rescale: X\nfit -> predict: lr\nrescale -> predict: X",
          # lr may hold X: rescaling X hands lr on too, together with X
          "fit -> rescale: X lr\nrescale -> predict: X lr"),
]
