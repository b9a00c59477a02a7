// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IAccessLog} from "../interfaces/IAccessLog.sol";
import {IConsentRegistry} from "../interfaces/IConsentRegistry.sol";
import {IStudyRegistry} from "../interfaces/IStudyRegistry.sol";

/// @title AccessLog
/// @notice Gateways record every release and every refusal of their site's imaging studies here,
/// one by one or as anchored batches, and emergency (break-glass) accesses signed by the site's
/// clinicians one by one.
/// @dev No admin: sites (StudyRegistry's `SITE_ROLE`) manage their own gateways and clinicians.
/// `recordAccess` reads one slot here (`_siteOf`), one of StudyRegistry (`patientOf`) and the
/// grant slots of ConsentRegistry (`isPermitted`). The trust model is documented in IAccessLog.
contract AccessLog is IAccessLog, EIP712 {
    /// @dev One slot per (site, clinician): 1 + 6 + 2 = 9 bytes, so a break-glass access reads
    /// and writes its authorisation and its window together.
    struct Clinician {
        bool allowed;
        uint48 windowStart;
        uint16 used;
    }

    /// @notice PurposeOfUse bit of a break-glass access: ETREAT, emergency treatment.
    uint8 public constant BREAK_GLASS_PURPOSE = 1;

    /// @notice Most break-glass accesses per (site, clinician) within one window.
    uint16 public constant BREAK_GLASS_LIMIT = 3;

    /// @notice Length of a break-glass window.
    uint48 public constant BREAK_GLASS_WINDOW = 1 days;

    // The EIP-712 type string is fixed by the signed format and hashed at compile time.
    /* solhint-disable gas-small-strings */

    /// @notice EIP-712 type hash of the `BreakGlass` message an emergency clinician signs.
    bytes32 public constant BREAK_GLASS_TYPEHASH = keccak256(
        "BreakGlass(address site,bytes32 studyKey,bytes32 requestId,bytes32 reasonCommitment,uint256 deadline)"
    );

    /* solhint-enable gas-small-strings */

    /// @dev StudyRegistry's role of sites (its `SITE_ROLE`).
    bytes32 private constant _SITE_ROLE = keccak256("SITE_ROLE");

    IConsentRegistry private immutable _consentRegistry;
    IStudyRegistry private immutable _studyRegistry;

    mapping(address gateway => address site) private _siteOf;
    /// @dev Key: keccak256(abi.encode(site, clinician)).
    mapping(bytes32 siteClinician => Clinician) private _clinicians;
    /// @dev Key: keccak256(abi.encode(clinician, requestId)).
    mapping(bytes32 clinicianRequest => bool) private _requestUsed;

    modifier onlySite() {
        if (!IAccessControl(address(_studyRegistry)).hasRole(_SITE_ROLE, msg.sender)) {
            revert AccessLogNotSite(msg.sender);
        }
        _;
    }

    /// @notice Deploys the log, wired for good to one ConsentRegistry and one StudyRegistry.
    /// @param consentRegistry_ The ConsentRegistry asked on every access.
    /// @param studyRegistry_ The StudyRegistry that maps site study keys to patients and holds the sites' role.
    constructor(IConsentRegistry consentRegistry_, IStudyRegistry studyRegistry_) EIP712("AccessLog", "2") {
        if (address(consentRegistry_) == address(0) || address(studyRegistry_) == address(0)) {
            revert AccessLogZeroAddress();
        }
        _consentRegistry = consentRegistry_;
        _studyRegistry = studyRegistry_;
    }

    /// @inheritdoc IAccessLog
    function setGateway(address gateway, bool allowed) external onlySite {
        if (gateway == address(0)) revert AccessLogZeroAddress();
        address bound = _siteOf[gateway];
        if (bound != address(0) && bound != msg.sender) revert AccessLogGatewayOfOtherSite(gateway, bound);
        _siteOf[gateway] = allowed ? msg.sender : address(0);
        emit GatewaySet(msg.sender, gateway, allowed);
    }

    /// @inheritdoc IAccessLog
    function setEmergencyClinician(address clinician, bool allowed) external onlySite {
        if (clinician == address(0)) revert AccessLogZeroAddress();
        _clinicians[_pairKey(msg.sender, clinician)].allowed = allowed;
        emit EmergencyClinicianSet(msg.sender, clinician, allowed);
    }

    /// @inheritdoc IAccessLog
    function recordAccess(bytes32 studyKey, address accessor, uint8 purpose, bytes32 requestId)
        external
        returns (bool permitted, bool identified)
    {
        address site = _gatewaySite();
        if (accessor == address(0)) revert AccessLogZeroAccessor();
        address patient = _patientOf(site, studyKey);
        (permitted, identified) = _consentRegistry.isPermitted(patient, accessor, studyKey, purpose);
        if (permitted) {
            emit AccessGranted(studyKey, patient, accessor, purpose, identified, requestId, msg.sender);
        } else {
            emit AccessDenied(studyKey, patient, accessor, purpose, requestId, msg.sender);
        }
    }

    /// @inheritdoc IAccessLog
    function recordBreakGlass(
        bytes32 studyKey,
        address clinician,
        bytes32 requestId,
        bytes32 reasonCommitment,
        uint256 deadline,
        bytes calldata signature
    ) external {
        address site = _gatewaySite();
        if (reasonCommitment == bytes32(0)) revert AccessLogZeroReason(requestId);
        if (block.timestamp > deadline) revert AccessLogExpiredSignature(deadline);
        address patient = _patientOf(site, studyKey);
        Clinician storage c = _clinicians[_pairKey(site, clinician)];
        Clinician memory state = c;
        if (!state.allowed) revert AccessLogNotEmergency(site, clinician);
        _checkSignature(
            clinician,
            keccak256(abi.encode(BREAK_GLASS_TYPEHASH, site, studyKey, requestId, reasonCommitment, deadline)),
            signature
        );
        bytes32 requestKey = _pairKey(clinician, requestId);
        if (_requestUsed[requestKey]) revert AccessLogRequestUsed(requestId);
        _requestUsed[requestKey] = true;
        if (block.timestamp >= uint256(state.windowStart) + BREAK_GLASS_WINDOW) {
            state.windowStart = uint48(block.timestamp);
            state.used = 0;
        }
        if (state.used >= BREAK_GLASS_LIMIT) {
            revert AccessLogBreakGlassLimit(clinician, state.windowStart + BREAK_GLASS_WINDOW);
        }
        c.windowStart = state.windowStart;
        c.used = state.used + 1;
        emit BreakGlassAccess(studyKey, patient, clinician, requestId, reasonCommitment, msg.sender);
    }

    /// @inheritdoc IAccessLog
    function anchorBatch(bytes32 root, uint32 count, bytes32 batchId) external {
        _gatewaySite();
        if (root == bytes32(0)) revert AccessLogZeroRoot(batchId);
        if (count == 0) revert AccessLogEmptyBatch(batchId);
        emit BatchAnchored(root, count, batchId, msg.sender);
    }

    /// @inheritdoc IAccessLog
    function checkAccess(address site, bytes32 studyKey, address accessor, uint8 purpose)
        external
        view
        returns (address patient, bytes32 contentRoot, bool permitted, bool identified)
    {
        (patient, contentRoot,,) = _studyRegistry.studyOf(site, studyKey);
        (permitted, identified) = _consentRegistry.isPermitted(patient, accessor, studyKey, purpose);
    }

    /// @inheritdoc IAccessLog
    function siteOf(address gateway) external view returns (address) {
        return _siteOf[gateway];
    }

    /// @inheritdoc IAccessLog
    function isEmergencyClinician(address site, address clinician) external view returns (bool) {
        return _clinicians[_pairKey(site, clinician)].allowed;
    }

    /// @inheritdoc IAccessLog
    function breakGlassUsage(address site, address clinician) external view returns (uint48 windowStart, uint16 used) {
        Clinician memory c = _clinicians[_pairKey(site, clinician)];
        return (c.windowStart, c.used);
    }

    /// @inheritdoc IAccessLog
    function consentRegistry() external view returns (IConsentRegistry) {
        return _consentRegistry;
    }

    /// @inheritdoc IAccessLog
    function studyRegistry() external view returns (IStudyRegistry) {
        return _studyRegistry;
    }

    /// @inheritdoc IAccessLog
    function recordLeaf(AccessRecord calldata record) external pure returns (bytes32) {
        return _leaf(record);
    }

    /// @inheritdoc IAccessLog
    function verifyRecord(bytes32 root, address gateway, AccessRecord calldata record, bytes32[] calldata proof)
        external
        pure
        returns (bool)
    {
        return record.gateway == gateway && MerkleProof.verifyCalldata(proof, root, _leaf(record));
    }

    /// @dev The caller's site; reverts unless the caller is a gateway.
    function _gatewaySite() internal view returns (address site) {
        site = _siteOf[msg.sender];
        if (site == address(0)) revert AccessLogNotGateway(msg.sender);
    }

    /// @dev The study's patient in `site`'s namespace (one StudyRegistry slot); reverts with
    /// `StudyRegistryUnknownStudy` for a study the site does not hold.
    function _patientOf(address site, bytes32 studyKey) internal view returns (address patient) {
        patient = _studyRegistry.patientOf(site, studyKey);
        if (patient == address(0)) revert IStudyRegistry.StudyRegistryUnknownStudy(site, studyKey);
    }

    /// @dev ECDSA first (low-s only), then EIP-1271, as ConsentRegistry does.
    function _checkSignature(address clinician, bytes32 structHash, bytes calldata signature) internal view {
        bytes32 digest = _hashTypedDataV4(structHash);
        if (signature.length == 65) {
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
            if (err == ECDSA.RecoverError.NoError && recovered == clinician) return;
        }
        if (!SignatureChecker.isValidERC1271SignatureNow(clinician, digest, signature)) {
            revert AccessLogInvalidSigner(clinician);
        }
    }

    function _leaf(AccessRecord calldata record) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(record))));
    }

    function _pairKey(address a, bytes32 b) internal pure returns (bytes32) {
        return keccak256(abi.encode(a, b));
    }

    function _pairKey(address a, address b) internal pure returns (bytes32) {
        return keccak256(abi.encode(a, b));
    }
}
