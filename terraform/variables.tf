# ---------------------------------------------------------------------------------------------------------------------
# What to deploy and what it manages
# ---------------------------------------------------------------------------------------------------------------------

variable "name" {
  type        = string
  description = "Name of the function and prefix of everything else this module creates (role, ledger table, log group, rule, topic, alarms)."
  default     = "bluum-rotator"

  validation {
    # Lambda names allow 64 characters; the longest derived name adds "-overdue-keys" (13).
    condition     = can(regex("^[A-Za-z0-9_-]{1,48}$", var.name))
    error_message = "name must be 1-48 letters, digits, '-' or '_' (it prefixes names of at most 64 characters)."
  }
}

variable "lambda_zip_path" {
  type        = string
  description = "Path of the deployment package built by `make lambda-zip` (build/bluum-rotator-lambda.zip). A changed file is redeployed (its SHA-256 is the source_code_hash)."

  validation {
    condition     = endswith(var.lambda_zip_path, ".zip") && fileexists(var.lambda_zip_path)
    error_message = "lambda_zip_path must name an existing .zip: run `make lambda-zip` in the bluum-rotator checkout and point at build/bluum-rotator-lambda.zip."
  }
}

variable "secrets" {
  type = map(object({
    description = optional(string, "Bluum API credentials, rotated by bluum-rotator")
    environment = optional(string, "production")
    base_url    = optional(string)
    investor_id = string
    tags        = optional(map(string), {})
  }))
  description = <<-EOT
    The secrets the rotator manages, by secret name, and for each the investor whose key it holds, its environment
    and (optionally) its Bluum base URL. These three are passed to the function (ROTATOR_SECRETS) and are the only
    source it trusts for them: a secret whose own JSON names another investor, environment or base URL is refused,
    so whoever may put a value into one secret cannot make the tenant key mint for another investor or send keys
    elsewhere. Each secret is created with a placeholder holding these three fields; put the key pair applications
    use today into it once (README, "First rotation"). The module never writes the value again.
  EOT

  validation {
    condition     = length(var.secrets) > 0
    error_message = "secrets must name at least one secret to rotate."
  }
  validation {
    condition     = alltrue([for name in keys(var.secrets) : can(regex("^[A-Za-z0-9/_+=.@-]{1,512}$", name)) && !can(regex("-[A-Za-z0-9]{6}$", name))])
    error_message = "secret names use letters, digits and /_+=.@- (at most 512), and must not end in '-' plus six characters (Secrets Manager's ARN suffix)."
  }
  validation {
    condition     = alltrue([for s in values(var.secrets) : contains(["sandbox", "production"], s.environment)])
    error_message = "environment must be \"sandbox\" or \"production\" (Bluum's API and dashboard call them TEST and PRODUCTION)."
  }
  validation {
    condition     = alltrue([for s in values(var.secrets) : s.base_url == null || can(regex("^https://[^/@]+(/.*)?$", s.base_url))])
    error_message = "base_url must be an https:// URL without a user name (leave it out for the environment's default Bluum URL)."
  }
  validation {
    condition     = alltrue([for s in values(var.secrets) : can(regex("^[[:print:]]{1,256}$", s.investor_id)) && trimspace(s.investor_id) == s.investor_id])
    error_message = "investor_id must name the investor whose key the secret holds (e.g. \"inv_123\")."
  }
}

variable "allowed_hosts" {
  type        = list(string)
  description = "Hosts (\"host\" or \"host:port\") the function may send keys to beyond Bluum's documented ones (api.bluumfinance.com, sandbox.api.bluumfinance.com, service.bluumfinance.com, test-service.bluumfinance.com, api.bluum.finance, sandbox.api.bluum.finance), for a `base_url` in `secrets` or in the manager secret (ROTATOR_ALLOWED_HOSTS). Empty: only Bluum's own."
  default     = []

  validation {
    condition     = alltrue([for h in var.allowed_hosts : can(regex("^[a-z0-9.-]+(:[0-9]{1,5})?$", h))])
    error_message = "allowed_hosts must be lower-case host names or addresses, optionally with :port (no scheme, no path)."
  }
}

variable "manager_secret_readers" {
  type        = list(string)
  description = "IAM role or user ARNs, besides the function's role, that may read the manager (tenant) key from the secret the module creates (its resource policy denies everyone else, administrators included): for example the role an operator runs the rotator CLI with. Patterns with * are allowed."
  default     = []

  validation {
    condition     = alltrue([for arn in var.manager_secret_readers : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", arn))])
    error_message = "manager_secret_readers must be IAM role or user ARNs (arn:aws:iam::ACCOUNT:role/NAME, not an assumed-role session ARN: the policy compares aws:PrincipalArn, which is the role's ARN)."
  }
}

variable "manager_secret_arn" {
  type        = string
  description = "ARN of an existing secret holding the managing (tenant) key that mints and revokes keys. Null: the module creates \"<name>/manager\" with a placeholder, and you put the key there once."
  default     = null

  validation {
    condition     = var.manager_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.manager_secret_arn))
    error_message = "manager_secret_arn must be a full Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX), or null."
  }
}

variable "manager_secret_kms_key_arn" {
  type        = string
  description = "ARN of the customer-managed KMS key an existing manager secret (manager_secret_arn) is encrypted with, if it is not kms_key_arn and not the AWS-managed key. The function may decrypt with it through Secrets Manager only."
  default     = null

  validation {
    condition     = var.manager_secret_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.manager_secret_kms_key_arn))
    error_message = "manager_secret_kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), or null."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of your own customer-managed KMS key for the secrets, the ledger table, the log group, the alarm topic and the function's environment. Null: the module creates one (create_kms_key). Its key policy must allow logs.<region>.amazonaws.com and cloudwatch.amazonaws.com (see README)."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias, or null."
  }
}

variable "create_kms_key" {
  type        = bool
  description = "Without kms_key_arn, create a customer-managed KMS key (rotated yearly) for the secrets, the ledger table, the log group, the alarm topic and the function's environment. False: AWS-managed keys, which every principal of the account allowed to use Secrets Manager can decrypt with."
  default     = true
}

# ---------------------------------------------------------------------------------------------------------------------
# Rotation schedule and timing
# ---------------------------------------------------------------------------------------------------------------------

variable "scheduler" {
  type        = string
  description = <<-EOT
    Who starts rotations. "secrets_manager" (the default): Secrets Manager's rotation rule (rotation_days or
    rotation_schedule_expression) starts them and calls the function's four steps; the tick only finishes them, and
    neither windows nor a pause can hold AWS's schedule back (it looks like a person's `rotate-secret` to the
    function). "tick": no rotation rule is configured; the EventBridge tick (tick_schedule) is the scheduler, as
    `rotator run-due` is on a host: it starts each secret when it is due (rotation_days, at most 90; or its expiry
    lead), unless it is paused or outside its `windows` or over their cap, and finishes what is unfinished.
    `aws secretsmanager rotate-secret` then fails (no rotation function is configured); a person rotates with the
    function's invoke event {"rotator": "rotate", "secret_id": ARN, "reason": TEXT} (README, "Run it as a Lambda").
  EOT
  default     = "secrets_manager"

  validation {
    condition     = contains(["secrets_manager", "tick"], var.scheduler)
    error_message = "scheduler must be \"secrets_manager\" (Secrets Manager's rotation rule) or \"tick\" (the tick starts due rotations, gated by pause and windows)."
  }
}

variable "windows" {
  type = object({
    timezone          = optional(string)
    allow             = optional(list(object({ cron = string, duration = string, timezone = optional(string) })))
    deny              = optional(list(object({ cron = string, duration = string, timezone = optional(string) })))
    expiry_lead       = optional(string)
    starts_per_window = optional(number)
    cap_window        = optional(string)
  })
  description = "With scheduler = \"tick\": when a scheduled rotation may start, the `[windows]` table of rotator.toml (README, \"When rotations may run\"): allow and deny windows (a cron expression, a duration, an IANA time zone), expiry_lead, starts_per_window (per paying key, the manager key) and cap_window. Passed as ROTATOR_WINDOWS and checked by the function as rotator.toml is (a bad one fails the tick with the key and the fix). Keep every allow window longer than tick_schedule's interval, or a tick may never fall inside it. Null: a due key starts at the next tick."
  default     = null

  validation {
    condition     = var.windows == null ? true : var.windows.starts_per_window == null ? true : var.windows.starts_per_window >= 1 && floor(var.windows.starts_per_window) == var.windows.starts_per_window
    error_message = "windows.starts_per_window must be a whole number of 1 or more (or left out: no cap)."
  }
}

variable "rotation_days" {
  type        = number
  description = "Rotate each secret every this many days (Secrets Manager's AutomaticallyAfterDays; with scheduler = \"tick\", the function's ROTATOR_ROTATE_EVERY, at most 90). Set it to null to use rotation_schedule_expression instead (the two are exclusive; not with scheduler = \"tick\")."
  default     = 90

  validation {
    condition     = var.rotation_days == null ? true : var.rotation_days >= 1 && var.rotation_days <= 1000 && floor(var.rotation_days) == var.rotation_days
    error_message = "rotation_days must be a whole number from 1 to 1000 (Secrets Manager's limits), or null with rotation_schedule_expression."
  }
}

variable "rotation_schedule_expression" {
  type        = string
  description = "A Secrets Manager schedule, \"rate(N days)\", \"rate(N hours)\" or \"cron(...)\", in place of rotation_days (set rotation_days = null with it)."
  default     = null

  validation {
    condition     = var.rotation_schedule_expression == null || can(regex("^(rate\\([0-9]+ (hours|days)\\)|cron\\(.+\\))$", var.rotation_schedule_expression))
    error_message = "rotation_schedule_expression must look like \"rate(30 days)\", \"rate(4 hours)\" or \"cron(0 9 ? * MON *)\"."
  }
}

variable "rotation_window" {
  type        = string
  description = "Length of the window a scheduled rotation may start in, e.g. \"4h\" (Secrets Manager's Duration, 1h-24h). A wider window spreads many secrets' rotations apart, which keeps them within the manager key's rate limit. Null: AWS's default."
  default     = null

  validation {
    condition     = var.rotation_window == null || can(regex("^([1-9]|1[0-9]|2[0-4])h$", var.rotation_window))
    error_message = "rotation_window must be a whole number of hours from \"1h\" to \"24h\", or null."
  }
}

variable "rotate_immediately" {
  type        = bool
  description = "Rotate each secret as soon as rotation is configured. Default false: the secrets start as placeholders, so the first rotation waits until you have put the current key in (README, \"First rotation\"). With scheduler = \"tick\": true rotates a key put in by hand at the first tick after it is put in (ROTATOR_SEEDED_KEY_AGE=due); false dates it from Bluum's key list and rotates it rotation_days after it was made."
  default     = false
}

variable "grace" {
  type        = string
  description = "How long the previous key keeps working after a rotation, for consumers to pick up the new one (ROTATOR_GRACE). The tick revokes it after that. Units w, d, h, m, s, largest first."
  default     = "1h"

  validation {
    condition     = can(regex("^([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$", var.grace)) && var.grace != ""
    error_message = "grace must be a duration such as \"1h\", \"30m\", \"1d12h\" or \"0s\" (units w, d, h, m, s, largest first)."
  }
}

variable "verify_timeout_seconds" {
  type        = number
  description = "How long testSecret waits for Bluum to accept the new key while it propagates (ROTATOR_VERIFY_TIMEOUT). Must leave room within timeout_seconds."
  default     = 60

  validation {
    condition     = var.verify_timeout_seconds >= 1 && var.verify_timeout_seconds <= 840 && floor(var.verify_timeout_seconds) == var.verify_timeout_seconds
    error_message = "verify_timeout_seconds must be a whole number from 1 to 840."
  }
}

variable "lease_ttl_seconds" {
  type        = number
  description = "How long a rotation's lease on a secret lasts after its last renewal (ROTATOR_LEASE_TTL). Another runner takes it over only this plus 40 s (the longest request the function may still have in flight: a whole Bluum call) after the holder last renewed it. At least 80 s: two such requests."
  default     = 900

  validation {
    condition     = var.lease_ttl_seconds >= 80 && var.lease_ttl_seconds <= 86400 && floor(var.lease_ttl_seconds) == var.lease_ttl_seconds
    error_message = "lease_ttl_seconds must be a whole number from 80 (two whole Bluum calls of 40 s: timeout 10 s + retry budget 30 s) to 86400; 900 (15 minutes) in production."
  }
}

variable "tick_schedule" {
  type        = string
  description = "EventBridge schedule of the tick that revokes previous keys once their grace has passed, resumes or rolls back stuck rotations and reports overdue keys. With scheduler = \"tick\" it also starts due rotations, so it must fire inside every allow window of `windows`."
  default     = "rate(15 minutes)"

  validation {
    condition     = can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.tick_schedule))
    error_message = "tick_schedule must be an EventBridge expression such as \"rate(15 minutes)\" or \"cron(0/15 * * * ? *)\"."
  }
}

# ---------------------------------------------------------------------------------------------------------------------
# The function
# ---------------------------------------------------------------------------------------------------------------------

variable "timeout_seconds" {
  type        = number
  description = "The function's timeout. One invocation is one rotation step, or one tick over every managed secret; testSecret may wait verify_timeout_seconds."
  default     = 300

  validation {
    condition     = var.timeout_seconds >= 30 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be from 30 to 900 (Lambda's maximum)."
  }
}

variable "memory_size" {
  type        = number
  description = "The function's memory in MB (CPU scales with it; 256 is ample for a few HTTP calls)."
  default     = 256

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be from 128 to 10240 MB."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "At most this many instances run at once; passed to the function as ROTATOR_CONCURRENCY. All share the manager key's rate limit at Bluum (10 req/s sandbox, 25 production) and each paces only itself, so each takes limit / instances - 1 and together they stay within it. 2 lets a testSecret that waits for propagation run beside the tick or another secret's step; more instances only make each slower."
  default     = 2

  validation {
    condition     = var.reserved_concurrency >= 1 && var.reserved_concurrency <= 9 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "reserved_concurrency must be a whole number from 1 to 9: with 10 or more, a sandbox manager key (10 req/s) leaves an instance no share of its rate limit."
  }
}

variable "tracing_mode" {
  type        = string
  description = "X-Ray tracing of the function: \"Active\" or \"PassThrough\"."
  default     = "Active"

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be \"Active\" or \"PassThrough\"."
  }
}

variable "vpc_subnet_ids" {
  type        = list(string)
  description = "Subnets to run the function in. Empty: outside any VPC. In a VPC it needs a route to Bluum's API (NAT) and to Secrets Manager and DynamoDB (NAT or VPC endpoints)."
  default     = []

  validation {
    condition     = alltrue([for id in var.vpc_subnet_ids : can(regex("^subnet-[0-9a-f]+$", id))])
    error_message = "vpc_subnet_ids must be subnet IDs (subnet-...)."
  }
}

variable "vpc_security_group_ids" {
  type        = list(string)
  description = "Security groups of the function in the VPC (needed with vpc_subnet_ids; egress to 443 is enough)."
  default     = []

  validation {
    condition     = alltrue([for id in var.vpc_security_group_ids : can(regex("^sg-[0-9a-f]+$", id))])
    error_message = "vpc_security_group_ids must be security group IDs (sg-...)."
  }
}

variable "code_signing_config_arn" {
  type        = string
  description = "ARN of a Lambda code signing configuration to enforce on the package. Null: none."
  default     = null

  validation {
    condition     = var.code_signing_config_arn == null || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:code-signing-config:csc-[a-z0-9]+$", var.code_signing_config_arn))
    error_message = "code_signing_config_arn must be a Lambda code signing configuration ARN, or null."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch keeps the function's logs (the rotation history is in them). At least 30, and one of CloudWatch's allowed values."
  default     = 365

  validation {
    condition     = contains([30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's values of at least 30: 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

# ---------------------------------------------------------------------------------------------------------------------
# Ledger, secrets' lifecycle
# ---------------------------------------------------------------------------------------------------------------------

variable "ledger_deletion_protection" {
  type        = bool
  description = "Protect the ledger table (each rotation's record and lease) from deletion. Turn off only to destroy the module."
  default     = true
}

variable "recovery_window_days" {
  type        = number
  description = "Days a deleted secret can be restored (0 deletes at once; 7-30 otherwise)."
  default     = 30

  validation {
    condition     = var.recovery_window_days == 0 || (var.recovery_window_days >= 7 && var.recovery_window_days <= 30)
    error_message = "recovery_window_days must be 0 or from 7 to 30."
  }
}

# ---------------------------------------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------------------------------------

variable "alarm_topic_arn" {
  type        = string
  description = "ARN of an existing SNS topic for the alarms. Null: the module creates \"<name>-alarms\"."
  default     = null

  validation {
    condition     = var.alarm_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be an SNS topic ARN, or null."
  }
}

variable "alarm_emails" {
  type        = list(string)
  description = "E-mail addresses subscribed to the topic the module creates (each must confirm). Ignored with alarm_topic_arn."
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_emails must be e-mail addresses."
  }
}

variable "metric_namespace" {
  type        = string
  description = "CloudWatch namespace of the rotator's metrics (failed rotations, overdue keys), which its JSON log records carry in Embedded Metric Format."
  default     = "BluumRotator"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metric_namespace)) && !startswith(var.metric_namespace, "AWS/")
    error_message = "metric_namespace must be 1-255 of A-Z a-z 0-9 . _ / # : - and must not start with \"AWS/\"."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource that takes them."
  default     = {}
}
