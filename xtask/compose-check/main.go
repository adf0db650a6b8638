// Command compose-check loads compose.yaml (and the files given after it, merged over it as
// `docker compose -f compose.yaml -f <override>` merges them) with the Compose specification's own loader
// (github.com/compose-spec/compose-go, the library `docker compose` uses) and prints the loaded,
// interpolated and normalised project as JSON on stdout, so that a test can check what Compose
// would really run rather than what the YAML seems to say.
//
// Usage:
//
//	compose-check [-dir <project dir>] [-file compose.yaml [-file <override> ...]] [-env-file .env] [-os-env]
//
// -file may be repeated: the files are merged in order, the later ones over the earlier ones (the
// HA variant: -file compose.yaml -file compose.ha.yaml). The project directory defaults to the current one; relative paths of the compose file and the
// env file are taken from it. Interpolation uses the env file only, so the output does not depend
// on the caller's environment (a developer's GRAFANA_ADMIN_PASSWORD, for one); -os-env adds the
// process environment under the env file, as `docker compose` does.
//
// On any error it prints one precise line to stderr and exits 1 (2 for bad arguments).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	dir := flag.String("dir", ".", "the project directory (relative paths in the compose file are resolved from it)")
	var files fileList
	flag.Var(&files, "file", "a compose file, relative to -dir unless absolute; repeat it to merge overrides in order (default compose.yaml)")
	envFile := flag.String("env-file", ".env", "the env file used for interpolation, relative to -dir unless absolute")
	osEnv := flag.Bool("os-env", false, "also interpolate from the process environment (the env file wins)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: compose-check [flags]\n\nPrints the normalised compose project as JSON.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "compose-check: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if len(files) == 0 {
		files = fileList{"compose.yaml"}
	}
	out, err := load(*dir, files, *envFile, *osEnv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: %s\n", oneLine(err.Error()))
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(append(out, '\n')); err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: writing the project: %v\n", err)
		os.Exit(1)
	}
}

// fileList is the repeatable -file flag.
type fileList []string

func (f *fileList) String() string { return strings.Join(*f, ",") }

func (f *fileList) Set(value string) error {
	*f = append(*f, value)
	return nil
}

// load returns the project of the files, merged in order, as JSON.
func load(dir string, files []string, envFile string, osEnv bool) ([]byte, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("project directory %s: %w", dir, err)
	}
	composeFiles := make([]string, 0, len(files))
	for _, file := range files {
		composeFiles = append(composeFiles, within(root, file))
	}
	composeFile := strings.Join(composeFiles, " + ")
	dotEnv := within(root, envFile)
	for _, path := range append(append([]string{}, composeFiles...), dotEnv) {
		if _, err := os.Stat(path); err != nil {
			return nil, err
		}
	}
	opts := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(root),
		cli.WithEnvFiles(dotEnv),
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	}
	if osEnv {
		// After the env file, so that its values win, as they do here for every caller.
		opts = append(opts, cli.WithOsEnv)
	}
	options, err := cli.NewProjectOptions(composeFiles, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", composeFile, err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", composeFile, err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding the project of %s as JSON: %w", composeFile, err)
	}
	return out, nil
}

// within returns path, made absolute from root if it is relative.
func within(root, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(root, path)
}

// oneLine joins a multi-line error message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
