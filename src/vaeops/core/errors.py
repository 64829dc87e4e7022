"""Exception types whose messages are meant for the person running the pipeline."""


class VaeopsError(Exception):
    """Base class: the CLI prints the message and exits non-zero, with no traceback; the HTTP service answers with
    `http_status` and the message."""

    exit_code = 2
    http_status = 500


class ParamsError(VaeopsError):
    """params.yaml is missing, malformed, or holds a value out of range."""


class DataError(VaeopsError):
    """A data file is missing, corrupt, or not what its header says."""


class DownloadError(DataError):
    """No mirror delivered a data file with its pinned checksum: often a network fault that a retry fixes."""


class ValidationFailed(VaeopsError):
    """The Great Expectations gate rejected a split; nothing downstream may run."""

    exit_code = 3


class CheckpointError(VaeopsError):
    """A checkpoint is missing, unreadable, or does not match the prepared data."""


class TrainingDiverged(VaeopsError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class ExportError(VaeopsError):
    """An ONNX graph failed its checks or its parity test against PyTorch."""


class InputError(VaeopsError, ValueError):
    """A caller passed inference input of the wrong shape, dtype or range."""

    http_status = 422


class BatchTooLarge(InputError):
    """An inference request asks for more images, latents or samples than the configured limit."""

    http_status = 413


class ModelFileError(VaeopsError):
    """An exported model folder lacks its manifest or a file, or a file does not match the manifest's sha256."""

    http_status = 503  # the request was fine; the model on disk is not


class InferenceFailed(VaeopsError):
    """onnxruntime failed on input that passed validation: a fault of the model or runtime, not of the caller."""


class RecordError(VaeopsError):
    """DVC could not record the run (`dvc commit`) or push it to the remote (`dvc push`)."""
