"""Built-in datasets. A dataset factory returns ``{"train": Dataset, "test": Dataset}``; items are
``(image float32 (3, R, R) in [-1, 1], label int)``."""

import attrs

from specmatch import DatasetSpec, Facts, FileNeed, hookimpl, param

MAX_RESOLUTION = 8192


@attrs.frozen(kw_only=True)
class DemoPhotosParams:
    resolution: int = param(32, doc="image side in pixels", ge=8, le=MAX_RESOLUTION)
    num_images: int = param(4096, doc="training crops (the test split uses held-out photos)", ge=1)
    num_test_images: int = param(512, doc="test crops from the held-out photos", ge=1)
    hflip_p: float = param(0.5, doc="horizontal flip probability (training split)", ge=0, le=1)
    seed: int = param(0, doc="seed of the flips")
    crop_seed: int = param(0, doc="seed of the crop boxes (keep it fixed to compare runs on the same images)")
    include_grey: bool = param(False, doc="also crop the bundled grey photos (replicated to RGB), train only")


def build_demo(params: DemoPhotosParams, ctx):
    from specmatch.data.demo import DemoPhotosDataset

    common = dict(resolution=params.resolution, seed=params.seed, crop_seed=params.crop_seed,
                  include_grey=params.include_grey)
    return {"train": DemoPhotosDataset(split="train", num_images=params.num_images, hflip_p=params.hflip_p,
                                       **common),
            "test": DemoPhotosDataset(split="test", num_images=params.num_test_images, hflip_p=0.0, **common)}


@attrs.frozen(kw_only=True)
class ImageFolderParams:
    root: str = param(doc="folder of images, any layout (relative to the recipe)", path=True)
    resolution: int = param(64, doc="image side in pixels", ge=8, le=MAX_RESOLUTION)
    crop: str = param("center", doc="how to make images square", choices=("center", "random", "resize"))
    hflip_p: float = param(0.5, doc="horizontal flip probability (training split)", ge=0, le=1)
    test_fraction: float = param(0.05, doc="fraction held out for evaluation", ge=0, lt=1)
    class_from_subfolder: bool = param(False, doc="labels from the first sub-folder name")
    seed: int = param(0, doc="seed of the flips (the split hashes each file's path, so it never moves)")


def build_image_folder(params: ImageFolderParams, ctx):
    from specmatch.data.image_folder import ImageFolderDataset

    root = ctx.resolve_path(params.root)
    common = dict(resolution=params.resolution, test_fraction=params.test_fraction, seed=params.seed,
                  class_from_subfolder=params.class_from_subfolder)
    return {"train": ImageFolderDataset(root, split="train", crop=params.crop, hflip_p=params.hflip_p, **common),
            "test": ImageFolderDataset(root, split="test", crop="center" if params.crop == "random"
                                       else params.crop, hflip_p=0.0, **common)}


@attrs.frozen(kw_only=True)
class FashionMNISTParams:
    root: str = param("/usr/share/datasets/fashion-mnist", doc="folder of the idx .gz files "
                                                              "(Debian package dataset-fashion-mnist)", path=True)
    resolution: int = param(32, doc="28px images padded to 32, then resized", ge=8,
                            le=MAX_RESOLUTION)
    hflip_p: float = param(0.0, doc="horizontal flip probability (training split)", ge=0, le=1)


def build_fashion_mnist(params: FashionMNISTParams, ctx):
    from specmatch.data.fashion_mnist import FashionMNISTDataset

    root = ctx.resolve_path(params.root)
    return {"train": FashionMNISTDataset(root=root, split="train", resolution=params.resolution,
                                         hflip_p=params.hflip_p),
            "test": FashionMNISTDataset(root=root, split="test", resolution=params.resolution)}


def demo_facts(params: DemoPhotosParams) -> Facts:
    return Facts(resolution=params.resolution, labelled=False)


def image_folder_facts(params: ImageFolderParams) -> Facts:
    return Facts(resolution=params.resolution, labelled=params.class_from_subfolder,
                 files=[FileNeed(param="root", path=params.root, what="image folder", folder=True)])


def fashion_mnist_facts(params: FashionMNISTParams) -> Facts:
    return Facts(resolution=params.resolution, labelled=True,
                 files=[FileNeed(param="root", path=params.root, what="Fashion-MNIST folder", folder=True)])


@hookimpl
def specmatch_datasets():
    yield DatasetSpec(name="demo-photos", factory=build_demo, params=DemoPhotosParams, facts=demo_facts,
                      summary="offline demo: crops of the photos bundled with scikit-image (held-out test photos)")
    yield DatasetSpec(name="image-folder", factory=build_image_folder, params=ImageFolderParams,
                      facts=image_folder_facts,
                      summary="any folder of images (recursive), resized and cropped, with flips")
    yield DatasetSpec(name="fashion-mnist", factory=build_fashion_mnist, params=FashionMNISTParams,
                      facts=fashion_mnist_facts,
                      summary="Fashion-MNIST from Debian's dataset-fashion-mnist, 32px, 3 channels, 10 classes")
