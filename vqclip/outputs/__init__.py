"""What a run leaves behind: run folders, image metadata, videos, contact sheets, loss plots."""
