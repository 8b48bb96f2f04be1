"""Image datasets as plain ``torch.utils.data.Dataset`` classes.

Every dataset returns ``(image, label)``: ``image`` is a float32 tensor (3, R, R) in [-1, 1], ``label`` an int
(0 for unlabelled data). Each has ``num_classes`` (0 if unlabelled), ``resolution`` and ``set_epoch(epoch)``;
random crops and flips are drawn per ``(seed, epoch, index)`` so data order and augmentation are reproducible
and resumable (``specmatch.data.transforms``).

* ``image_folder.ImageFolderDataset``: any folder of image files.
* ``demo.DemoPhotosDataset``: offline demo crops of the photos bundled with scikit-image and matplotlib.
* ``fashion_mnist.FashionMNISTDataset``: Fashion-MNIST from its idx files, padded to 32x32 RGB.

Helpers: ``image_file`` reads one file as 8-bit RGB (which Pillow modes, how 16-bit and float images are
scaled); ``check`` is the preflight that lists every unreadable item before training (the ``preflight``
method datasets may offer); ``check_command`` is ``specmatch data check``.
"""
