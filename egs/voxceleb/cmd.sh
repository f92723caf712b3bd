# The one place that chooses how parallel jobs run (Kaldi's cmd.sh idea).
#   local processes (default):   cmd="run.py"
#   a Slurm cluster:             cmd="run.py --backend slurm --slurm-opts '-p cpu --mem=4G'"
# Training is launched by torchrun (see README), not through $cmd.
export cmd="run.py"
