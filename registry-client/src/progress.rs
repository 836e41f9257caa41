//! Progress of one blob as plain data. The engine turns these into Docker's JSON progress
//! lines (`{"status":"Downloading","progressDetail":{"current":..,"total":..},"id":".."}`);
//! nothing here knows about terminals or JSON.

/// What is happening to a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Waiting,
    Downloading,
    /// A transfer failed and is tried again (resumed where possible).
    Retrying {
        attempt: u32,
    },
    DownloadComplete,
    /// Push: the registry already has the blob.
    Exists,
    /// Push: the blob was mounted from another repository of the same registry.
    Mounted {
        from: String,
    },
    Pushing,
    Pushed,
}

impl Status {
    /// The words the docker CLI shows for this status.
    pub fn docker_text(&self) -> String {
        match self {
            Status::Waiting => "Waiting".into(),
            Status::Downloading => "Downloading".into(),
            Status::Retrying { attempt } => format!("Retrying (attempt {attempt})"),
            Status::DownloadComplete => "Download complete".into(),
            Status::Exists => "Layer already exists".into(),
            Status::Mounted { from } => format!("Mounted from {from}"),
            Status::Pushing => "Pushing".into(),
            Status::Pushed => "Pushed".into(),
        }
    }
}

/// One progress report: `id` is the short (12 hex) digest Docker uses as the line id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressEvent {
    pub id: String,
    pub status: Status,
    pub current: u64,
    pub total: Option<u64>,
}

/// Receives progress; called from the transfer's task, so it must be quick.
pub trait Progress: Send + Sync {
    fn event(&self, event: &ProgressEvent);
}

impl<F: Fn(&ProgressEvent) + Send + Sync> Progress for F {
    fn event(&self, event: &ProgressEvent) {
        self(event)
    }
}

/// Progress that goes nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: &ProgressEvent) {}
}

/// Bytes between two `Downloading`/`Pushing` events: often enough for a progress bar,
/// rare enough not to cost anything at loopback speed.
pub(crate) const REPORT_EVERY: u64 = 512 << 10;

pub(crate) fn report(p: &dyn Progress, id: &str, status: Status, current: u64, total: Option<u64>) {
    p.event(&ProgressEvent {
        id: id.to_owned(),
        status,
        current,
        total,
    });
}
