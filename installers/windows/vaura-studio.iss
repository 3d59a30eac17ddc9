; Inno Setup script for VAURA Studio on Windows (Inno Setup 6: https://jrsoftware.org/isinfo.php).
; Build the application folder first (python installers\build_bundle.py), then:
;   iscc installers\windows\vaura-studio.iss
; or run installers\windows\build.ps1, which does both. Output: dist\VAURA-Studio-Setup-<version>.exe

#define AppName "VAURA Studio"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define BundleDir "..\..\dist\vaura-studio"

[Setup]
AppId={{6F0E2C51-8B7A-4B0E-9A3D-5C1F7D2E4A90}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=VAURA Studio
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
; Per-user install by default (no administrator rights); the user may choose all users instead.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
LicenseFile=..\..\LICENSE
SetupIconFile=..\..\resources\icons\vaura-studio.ico
UninstallDisplayIcon={app}\vaura-studio.exe
OutputDir=..\..\dist
OutputBaseFilename=VAURA-Studio-Setup-{#AppVersion}
Compression=lzma2/max
SolidCompression=yes
; torch makes the folder large: allow setup files over 2 GB to be split into .bin slices.
DiskSpanning=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"
Name: "addtopath"; Description: "Add the vaura command to PATH"; GroupDescription: "Command line:"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\vaura-studio.exe"
Name: "{group}\Third-party licences"; Filename: "{app}\THIRD_PARTY_LICENSES.txt"
Name: "{group}\{cm:UninstallProgram,{#AppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\vaura-studio.exe"; Tasks: desktopicon

[Registry]
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; \
  Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\vaura-studio.exe"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Current: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Current) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Current) + ';') = 0;
end;
