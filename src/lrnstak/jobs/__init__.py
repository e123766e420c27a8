"""Jobs: training and batch prediction work queued for the jobs worker."""
