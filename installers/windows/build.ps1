# Build the VAURA Studio application folder and its Inno Setup installer on Windows.
#   powershell -ExecutionPolicy Bypass -File installers\windows\build.ps1 [-Cuda]
# -Cuda installs the CUDA 12.8 build of torch into the environment first (GPU support for NVIDIA
# cards); without it the PyPI torch for Windows is used, which runs on the CPU.
param([switch]$Cuda)
$ErrorActionPreference = "Stop"
$root = Resolve-Path (Join-Path $PSScriptRoot "..\..")
Set-Location $root

if (-not (Test-Path ".venv\Scripts\python.exe")) { py -3.11 -m venv .venv }
$py = ".venv\Scripts\python.exe"
& $py -m pip install --upgrade pip
if ($Cuda) {
    & $py -m pip install "torch==2.11.0" "torchaudio==2.11.0" --index-url https://download.pytorch.org/whl/cu128
}
& $py -m pip install -e ".[bundle]"
& $py installers\build_bundle.py --check
if ($LASTEXITCODE -ne 0) { throw "bundle build failed" }

$version = & $py -c "import vaura_core; print(vaura_core.__version__)"
$iscc = (Get-Command iscc -ErrorAction SilentlyContinue).Source
if (-not $iscc) { $iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
if (-not (Test-Path $iscc)) { throw "Inno Setup 6 (ISCC.exe) not found: install it from https://jrsoftware.org/isinfo.php" }
& $iscc "/DAppVersion=$version" installers\windows\vaura-studio.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
