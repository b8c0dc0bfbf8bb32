"""Training recipe for the embedded image model: offline digits data set, VP/EDM/FDM preconditioning."""
