"""`dassl.data.DataManager`. The fake delegates to ammpl's DataManager, which keeps Dassl's
contract (same few-shot picks, loaders, attributes); the tests are about the trainer side."""

from ammpl.data import DataManager as _AmmplDataManager


class DataManager:
    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        delegate = _AmmplDataManager(cfg, custom_tfm_train, custom_tfm_test, dataset_wrapper)
        self.dataset = delegate.dataset
        self.train_loader_x = delegate.train_loader_x
        self.train_loader_u = None
        self.val_loader = delegate.val_loader
        self.test_loader = delegate.test_loader
        self.num_classes = delegate.num_classes
        self.num_source_domains = delegate.num_source_domains
        self.lab2cname = delegate.lab2cname
