"""`dassl.evaluation.build_evaluator` with the Classification evaluator (accuracy and error;
the real one also reports macro F1)."""

from collections import OrderedDict


class Classification:
    def __init__(self, cfg, lab2cname=None):
        self.cfg = cfg
        self.lab2cname = lab2cname
        self.reset()

    def reset(self):
        self.correct = 0
        self.total = 0

    def process(self, output, label):
        pred = output.max(1)[1]
        self.correct += int(pred.eq(label).sum().item())
        self.total += int(label.shape[0])

    def evaluate(self):
        acc = 100.0 * self.correct / self.total
        print("=> result")
        print(f"* total: {self.total:,}")
        print(f"* correct: {self.correct:,}")
        print(f"* accuracy: {acc:.1f}%")
        print(f"* error: {100.0 - acc:.1f}%")
        return OrderedDict(accuracy=acc, error_rate=100.0 - acc)


def build_evaluator(cfg, **kwargs):
    if cfg.TEST.EVALUATOR != "Classification":
        raise KeyError(f'Object name "{cfg.TEST.EVALUATOR}" does not exist in "EVALUATOR" registry')
    return Classification(cfg, **kwargs)
