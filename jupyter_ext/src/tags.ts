/**
 * The few pieces of the tag grammar the front end needs (the whole grammar lives in
 * compiler/tags.py): which step a cell starts, and how to set or clear that tag.
 */

const STEP_PREFIXES = ['step:', 'block:'];
const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** The step a cell's tags start, or null. `block:` is Kale's spelling. */
export function stepOfTags(tags: readonly string[] | null | undefined): string | null {
  for (const tag of tags ?? []) {
    const t = String(tag).trim();
    for (const prefix of STEP_PREFIXES) {
      if (t.startsWith(prefix) && t.length > prefix.length) {
        return t.slice(prefix.length).trim();
      }
    }
  }
  return null;
}

/** The pipeline role of a cell that starts no step (imports, parameters, ...), or null. */
export function roleOfTags(tags: readonly string[] | null | undefined): string | null {
  const roles: Record<string, string> = {
    imports: 'imports',
    functions: 'functions',
    parameters: 'parameters',
    'pipeline-parameters': 'parameters',
    metrics: 'metrics',
    'pipeline-metrics': 'metrics',
    skip: 'skip'
  };
  for (const tag of tags ?? []) {
    const role = roles[String(tag).trim()];
    if (role) {
      return role;
    }
  }
  return null;
}

/** Why a step name is not valid, or null when it is. */
export function validateStepName(name: string): string | null {
  const n = name.trim();
  if (!n) {
    return null; // empty means "remove the step tag"
  }
  if (!NAME.test(n)) {
    return 'A step name starts with a letter or _ and holds letters, digits, _ and - only.';
  }
  return null;
}

/**
 * The tags with the cell's step set to `name` (replacing any step:/block: tag, keeping the
 * others in order); an empty name removes the step tag.
 */
export function withStepTag(tags: readonly string[] | null | undefined, name: string): string[] {
  const error = validateStepName(name);
  if (error) {
    throw new Error(error);
  }
  const n = name.trim();
  const out: string[] = [];
  let placed = false;
  for (const tag of tags ?? []) {
    const isStep = STEP_PREFIXES.some(p => String(tag).startsWith(p));
    if (isStep) {
      if (n && !placed) {
        out.push(`step:${n}`);
        placed = true;
      }
      continue;
    }
    out.push(tag);
  }
  if (n && !placed) {
    out.unshift(`step:${n}`);
  }
  return out;
}
